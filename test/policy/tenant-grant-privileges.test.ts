import { describe, expect, it } from "@jest/globals";
import { runProgram } from "../../harness/program";
import { tenantGrantPrivileges } from "../../policy/policies/tenant-grant-privileges";
import { TYPES } from "../../policy/tenancy";
import { resourceViolations } from "./run";
import { IN, tenantFixtures, withProps } from "./util";

const acme = tenantFixtures("acme");

describe("tenant-grant-privileges", () => {
  it("passes every grant and default privilege the program declares", async () => {
    const run = await runProgram("local", [
      { id: "acme", tier: "standard" },
      { id: "hooli", tier: "premium", extra: "state: offboarded\noffboardedAt: 2026-11-01\n" },
    ]);
    const checked = run.registrations.filter(
      (r) => r.type === TYPES.grant || r.type === TYPES.defaultPrivileges,
    );
    // Per tenant 7 grants and 4 default privileges; an offboarded one keeps them (CONNECT revoked).
    expect(checked).toHaveLength(2 * (7 + 4));
    for (const r of checked) {
      const fixture = { type: r.type, name: r.name, parents: IN.placement, props: r.inputs };
      expect({
        name: r.name,
        violations: await resourceViolations(tenantGrantPrivileges, fixture),
      }).toEqual({
        name: r.name,
        violations: [],
      });
    }
  });

  const cases: [string, () => ReturnType<typeof acme.tablesRw>, string][] = [
    [
      "the ro login's table grant widened to writes",
      () =>
        withProps(acme.tablesRw(), {
          role: "tenant_acme_ro",
          privileges: ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"],
        }),
      "Grant acme@standard-grant-app-tables-rw gives tenant_acme_ro SELECT, INSERT, UPDATE, DELETE, TRUNCATE on tables in schema app; an ro login may hold only SELECT there.",
    ],
    [
      "TRUNCATE added to the rw login's tables",
      () =>
        withProps(acme.tablesRw(), {
          privileges: ["DELETE", "INSERT", "SELECT", "UPDATE", "TRUNCATE"],
        }),
      "Grant acme@standard-grant-app-tables-rw gives tenant_acme_rw DELETE, INSERT, SELECT, UPDATE, TRUNCATE on tables in schema app; an rw login may hold only DELETE, INSERT, SELECT, UPDATE there.",
    ],
    [
      "the ro login's default privileges widened",
      () => withProps(acme.defaultTablesRo(), { privileges: ["SELECT", "INSERT", "TRIGGER"] }),
      "Default privileges of tenant_acme_owner give tenant_acme_ro SELECT, INSERT, TRIGGER on new tables in schema app; an ro login may get only SELECT there.",
    ],
    [
      "CREATE on the app schema for the group",
      () =>
        withProps(acme.tablesRw(), {
          role: "tenant_acme",
          objectType: "schema",
          privileges: ["USAGE", "CREATE"],
        }),
      "Grant acme@standard-grant-app-tables-rw gives tenant_acme USAGE, CREATE on schemas in schema app; the group may hold only USAGE there.",
    ],
    [
      "TEMPORARY on the database for the group",
      () => withProps(acme.groupConnect(), { privileges: ["CONNECT", "TEMPORARY"] }),
      "Grant acme@standard-grant-group-connect gives tenant_acme CONNECT, TEMPORARY on database tenant_acme; the group may hold only CONNECT or nothing there.",
    ],
    [
      "CONNECT on the database for a login directly",
      () => withProps(acme.groupConnect(), { role: "tenant_acme_rw" }),
      "Grant acme@standard-grant-group-connect gives tenant_acme_rw CONNECT on database tenant_acme; an rw login may hold only nothing there.",
    ],
    [
      "a function grant to a login",
      () => withProps(acme.tablesRw(), { objectType: "function", privileges: ["EXECUTE"] }),
      "Grant acme@standard-grant-app-tables-rw gives tenant_acme_rw EXECUTE on functions in schema app; tenant roles get grants on databases, schemas, tables, sequences only.",
    ],
    [
      "a grant with GRANT OPTION",
      () => withProps(acme.tablesRw(), { withGrantOption: true }),
      "Grant acme@standard-grant-app-tables-rw gives tenant_acme_rw DELETE, INSERT, SELECT, UPDATE on tables in schema app WITH GRANT OPTION; tenant roles never pass privileges on.",
    ],
    [
      "a grant on chosen tables",
      () => withProps(acme.tablesRw(), { objects: ["customers"] }),
      "Grant acme@standard-grant-app-tables-rw gives tenant_acme_rw DELETE, INSERT, SELECT, UPDATE on tables in schema app for chosen objects (customers); the model grants on whole schemas.",
    ],
    [
      "default privileges for another owner",
      () => withProps(acme.defaultTablesRo(), { owner: "tenant_acme_rw" }),
      "Default privileges of tenant_acme_rw give tenant_acme_ro SELECT on new tables in schema app; only the tenant's owner tenant_acme_owner creates its objects.",
    ],
    [
      "default privileges on functions",
      () => withProps(acme.defaultTablesRo(), { objectType: "function", privileges: ["EXECUTE"] }),
      "Default privileges of tenant_acme_owner give tenant_acme_ro EXECUTE on new functions in schema app; tenant roles get default privileges on tables, sequences only.",
    ],
  ];
  for (const [change, fixture, message] of cases) {
    it(`reports ${change}, naming the role and the privileges`, async () => {
      expect(await resourceViolations(tenantGrantPrivileges, fixture())).toEqual([message]);
    });
  }
});
