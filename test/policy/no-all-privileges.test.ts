import { describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { noAllPrivileges } from "../../policy/policies/no-all-privileges";
import { resourceViolations } from "./run";
import { tenantFixtures, withProps } from "./util";

const acme = tenantFixtures("acme");

describe("no-all-privileges", () => {
  it("passes grants and default privileges that list their privileges", async () => {
    for (const f of [
      acme.publicRevoke(),
      acme.groupConnect(),
      acme.tablesRw(),
      acme.defaultTablesRo(),
    ]) {
      assert.deepEqual(await resourceViolations(noAllPrivileges, f), []);
    }
  });

  for (const all of ["ALL", "all", "ALL PRIVILEGES"]) {
    it(`reports a grant of ${all}`, async () => {
      assert.deepEqual(
        await resourceViolations(
          noAllPrivileges,
          withProps(acme.tablesRw(), { privileges: [all] }),
        ),
        [
          "Privileges must be listed one by one, never ALL (table privileges of tenant_acme_rw in tenant_acme).",
        ],
      );
    });
  }

  it("reports default privileges of ALL", async () => {
    assert.deepEqual(
      await resourceViolations(
        noAllPrivileges,
        withProps(acme.defaultTablesRo(), { privileges: ["SELECT", "ALL"] }),
      ),
      [
        "Privileges must be listed one by one, never ALL (table privileges of tenant_acme_ro in tenant_acme).",
      ],
    );
  });
});
