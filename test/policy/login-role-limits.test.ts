import { describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { loginRoleLimits } from "../../policy/policies/login-role-limits";
import { resourceViolations } from "./run";
import { tenantFixtures, withProps } from "./util";

const acme = tenantFixtures("acme");

describe("login-role-limits", () => {
  it("passes compliant login roles and ignores roles without login", async () => {
    for (const role of [acme.rw(), acme.ro(), acme.group(), acme.owner()]) {
      assert.deepEqual(await resourceViolations(loginRoleLimits, role), []);
    }
  });

  const cases: [change: string, props: Record<string, unknown>, message: string][] = [
    [
      "no connection limit (the default, -1)",
      { connectionLimit: undefined },
      "Login role tenant_acme_ro must have a connection limit from 1 to 1000 (has -1).",
    ],
    [
      "connection limit 0",
      { connectionLimit: 0 },
      "Login role tenant_acme_ro must have a connection limit from 1 to 1000 (has 0).",
    ],
    [
      "connection limit above the maximum",
      { connectionLimit: 1001 },
      "Login role tenant_acme_ro must have a connection limit from 1 to 1000 (has 1001).",
    ],
    [
      "no password",
      { password: undefined },
      "Login role tenant_acme_ro must have a password (password or passwordWo).",
    ],
  ];
  for (const [change, props, message] of cases) {
    it(`reports ${change}`, async () => {
      assert.deepEqual(await resourceViolations(loginRoleLimits, withProps(acme.ro(), props)), [
        message,
      ]);
    });
  }

  it("accepts a write-only password", async () => {
    const role = withProps(acme.ro(), {
      password: undefined,
      passwordWo: "x",
      passwordWoVersion: "1",
    });
    assert.deepEqual(await resourceViolations(loginRoleLimits, role), []);
  });

  it("takes the maximum from the policy config", async () => {
    assert.deepEqual(
      await resourceViolations(loginRoleLimits, acme.ro(), { maxConnectionLimit: 20 }),
      [],
    );
    assert.deepEqual(
      await resourceViolations(loginRoleLimits, acme.ro(), { maxConnectionLimit: 10 }),
      ["Login role tenant_acme_ro must have a connection limit from 1 to 10 (has 20)."],
    );
  });
});
