import { describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { clusterProviderSettings } from "../../policy/policies/cluster-provider-settings";
import { TYPES } from "../../policy/tenancy";
import { resourceViolations } from "./run";
import { Fixture, withProps } from "./util";

const cluster = (stack = "production"): Fixture => ({
  type: TYPES.provider,
  name: "cluster-standard",
  stack,
  props: {
    host: "standard.db.internal.example.com",
    port: "5432",
    database: "postgres",
    username: "pgtenants_provisioner",
    password: "secret",
    sslmode: "verify-full",
    superuser: "false",
  },
});

describe("cluster-provider-settings", () => {
  it("passes a non-superuser provisioning role with verified TLS", async () => {
    assert.deepEqual(await resourceViolations(clusterProviderSettings, cluster()), []);
    assert.deepEqual(
      await resourceViolations(
        clusterProviderSettings,
        withProps(cluster(), { superuser: false, sslmode: "require" }),
      ),
      [],
    );
  });

  const cases: [change: string, props: Record<string, unknown>, message: string][] = [
    [
      "superuser: true",
      { superuser: "true" },
      "The provider of cluster cluster-standard must set superuser: false (the provisioning role is no superuser; the default is true).",
    ],
    [
      "superuser unset (the provider's default is true)",
      { superuser: undefined },
      "The provider of cluster cluster-standard must set superuser: false (the provisioning role is no superuser; the default is true).",
    ],
    [
      "username postgres",
      { username: "postgres" },
      "The provider of cluster cluster-standard must connect as the provisioning role, never as postgres (forbidden: postgres).",
    ],
    [
      "sslmode disable",
      { sslmode: "disable" },
      "The provider of cluster cluster-standard must use sslmode require, verify-ca, verify-full on stack production (has disable).",
    ],
    [
      "sslmode prefer",
      { sslmode: "prefer" },
      "The provider of cluster cluster-standard must use sslmode require, verify-ca, verify-full on stack production (has prefer).",
    ],
    [
      "no sslmode",
      { sslmode: undefined },
      "The provider of cluster cluster-standard must use sslmode require, verify-ca, verify-full on stack production (has none).",
    ],
  ];
  for (const [change, props, message] of cases) {
    it(`reports ${change}`, async () => {
      assert.deepEqual(
        await resourceViolations(clusterProviderSettings, withProps(cluster(), props)),
        [message],
      );
    });
  }

  it("allows sslmode disable on the local stacks of the config only", async () => {
    const local = withProps(cluster("local"), { sslmode: "disable" });
    assert.deepEqual(await resourceViolations(clusterProviderSettings, local), []);
    assert.deepEqual(
      await resourceViolations(clusterProviderSettings, local, { localStacks: [] }),
      [
        "The provider of cluster cluster-standard must use sslmode require, verify-ca, verify-full on stack local (has disable).",
      ],
    );
  });

  it("still refuses postgres and superuser on local stacks", async () => {
    const local = withProps(cluster("local"), { username: "postgres", superuser: true });
    assert.deepEqual(await resourceViolations(clusterProviderSettings, local), [
      "The provider of cluster cluster-standard must set superuser: false (the provisioning role is no superuser; the default is true).",
      "The provider of cluster cluster-standard must connect as the provisioning role, never as postgres (forbidden: postgres).",
    ]);
  });

  it("takes stricter sslmodes from the config", async () => {
    const required = withProps(cluster(), { sslmode: "require" });
    assert.deepEqual(
      await resourceViolations(clusterProviderSettings, required, {
        secureSslModes: ["verify-full"],
      }),
      [
        "The provider of cluster cluster-standard must use sslmode verify-full on stack production (has require).",
      ],
    );
  });
});
