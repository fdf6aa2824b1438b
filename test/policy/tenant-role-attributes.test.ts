import { describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { tenantRoleAttributes } from "../../policy/policies/tenant-role-attributes";
import { resourceViolations } from "./run";
import { tenantFixtures, withProps } from "./util";

const acme = tenantFixtures("acme");

describe("tenant-role-attributes", () => {
  it("passes every role of a compliant tenant", async () => {
    for (const role of [acme.group(), acme.owner(), acme.rw(), acme.ro()]) {
      assert.deepEqual(await resourceViolations(tenantRoleAttributes, role), []);
    }
  });

  const cases: [input: string, message: string][] = [
    ["superuser", "Tenant role tenant_acme_rw must not be SUPERUSER (superuser must be false)."],
    [
      "createDatabase",
      "Tenant role tenant_acme_rw must not be CREATEDB (createDatabase must be false).",
    ],
    ["createRole", "Tenant role tenant_acme_rw must not be CREATEROLE (createRole must be false)."],
    [
      "replication",
      "Tenant role tenant_acme_rw must not be REPLICATION (replication must be false).",
    ],
    [
      "bypassRowLevelSecurity",
      "Tenant role tenant_acme_rw must not be BYPASSRLS (bypassRowLevelSecurity must be false).",
    ],
  ];
  for (const [input, message] of cases) {
    it(`reports ${input}: true`, async () => {
      assert.deepEqual(
        await resourceViolations(tenantRoleAttributes, withProps(acme.rw(), { [input]: true })),
        [message],
      );
    });
  }

  it("treats an unset attribute as the provider's default, false", async () => {
    const role = withProps(acme.group(), { superuser: undefined, createRole: undefined });
    assert.deepEqual(await resourceViolations(tenantRoleAttributes, role), []);
  });

  it("ignores other resource types", async () => {
    assert.deepEqual(
      await resourceViolations(
        tenantRoleAttributes,
        withProps(acme.database(), { superuser: true }),
      ),
      [],
    );
  });
});
