import { describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { noPublicGrants } from "../../policy/policies/no-public-grants";
import { resourceViolations } from "./run";
import { tenantFixtures, withProps } from "./util";

const acme = tenantFixtures("acme");

describe("no-public-grants", () => {
  it("passes the PUBLIC revoke (empty privileges) and grants to tenant roles", async () => {
    for (const f of [
      acme.publicRevoke(),
      acme.groupConnect(),
      acme.tablesRw(),
      acme.defaultTablesRo(),
    ]) {
      assert.deepEqual(await resourceViolations(noPublicGrants, f), []);
    }
  });

  it("reports a grant of privileges to PUBLIC", async () => {
    assert.deepEqual(
      await resourceViolations(
        noPublicGrants,
        withProps(acme.publicRevoke(), { privileges: ["CONNECT", "TEMPORARY"] }),
      ),
      [
        "Nothing may be granted to PUBLIC: only the revoke (privileges: []) is allowed, not CONNECT, TEMPORARY on database in tenant_acme.",
      ],
    );
  });

  it("reports PUBLIC spelled in capitals", async () => {
    assert.deepEqual(
      await resourceViolations(
        noPublicGrants,
        withProps(acme.tablesRw(), { role: "PUBLIC", privileges: ["SELECT"] }),
      ),
      [
        "Nothing may be granted to PUBLIC: only the revoke (privileges: []) is allowed, not SELECT on table in tenant_acme.",
      ],
    );
  });

  it("reports default privileges for PUBLIC", async () => {
    assert.deepEqual(
      await resourceViolations(
        noPublicGrants,
        withProps(acme.defaultTablesRo(), { role: "public" }),
      ),
      ["No default privileges may be given to PUBLIC: SELECT on future table in tenant_acme."],
    );
  });
});
