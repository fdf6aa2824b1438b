import assert from "node:assert/strict";
import { describe, it } from "@jest/globals";
import { resolve } from "../../harness/mocks";
import { ofTenant, ProgramRun, runProgram, unwrapSecrets } from "../../harness/program";

/**
 * The program on day two, under the mock runtime: a declared move, then the switch; a tier edited
 * alone; an offboarded tenant.
 */

/** The types of the resources a placement declares. */
const PLACEMENT_TYPES = new Set([
  "pg-tenants:index:TenantPlacement",
  "postgresql:index/role:Role",
  "postgresql:index/grantRole:GrantRole",
  "postgresql:index/database:Database",
  "postgresql:index/grant:Grant",
  "postgresql:index/defaultPrivileges:DefaultPrivileges",
  "postgresql:index/extension:Extension",
]);
/** A placement and the resources named after it. */
const placementOf = (run: ProgramRun, placement: string) =>
  run.registrations.filter((r) => r.name === placement || r.name.startsWith(`${placement}-`));

describe("program: a declared move, then the switch", () => {
  let moving: ProgramRun;
  let switched: ProgramRun;

  it("declares the target placement on the target cluster beside the source, credentials still on the source", async () => {
    moving = await runProgram("local", [
      { id: "acme", tier: "standard", extra: "move:\n  to: premium\n" },
      { id: "globex", tier: "premium" },
    ]);
    const source = placementOf(moving, "acme@standard");
    const target = placementOf(moving, "acme@premium");
    assert.equal(source.length, 19);
    assert.equal(target.length, 19);
    assert.deepEqual(
      target.map((r) => r.name.replace("acme@premium", "P")),
      source.map((r) => r.name.replace("acme@standard", "P")),
    );
    for (const r of target.filter((r) => r.type !== "pg-tenants:index:TenantPlacement")) {
      assert.match(r.provider ?? "", /::cluster-premium::/, r.name);
    }
    for (const r of source.filter((r) => r.type !== "pg-tenants:index:TenantPlacement")) {
      assert.match(r.provider ?? "", /::cluster-standard::/, r.name);
    }
    assert.deepEqual(unwrapSecrets(moving.mocks.named("acme@premium-db").inputs), {
      name: "tenant_acme",
      owner: "tenant_acme_owner",
      template: "customer_template_v1",
      connectionLimit: 102,
      allowConnections: true,
      isTemplate: false,
    });
    for (const db of ["acme@standard-db", "acme@premium-db"]) {
      const seen = moving.options.get(db);
      assert.equal(seen?.protect, true, db);
      assert.equal(seen?.retainOnDelete, true, db);
    }
    // One set of passwords and one key serve both placements.
    assert.equal(
      ofTenant(moving.registrations, "acme").filter(
        (r) => r.type === "random:index/randomPassword:RandomPassword",
      ).length,
      2,
    );
    const credentials = (await resolve(moving.outputs.credentials!)).value;
    assert.equal(credentials.acme.rw.port, 55432);
    assert.ok(
      moving.outputs.pgHba.premium.includes(
        "host tenant_acme +tenant_acme 127.0.0.1/32 scram-sha-256",
      ),
    );
    assert.ok(
      moving.outputs.pgHba.standard.includes(
        "host tenant_acme +tenant_acme 127.0.0.1/32 scram-sha-256",
      ),
    );
  });

  it("after the switch, declares the same target resources with identical inputs and no source placement", async () => {
    switched = await runProgram("local", [
      { id: "acme", tier: "premium" },
      { id: "globex", tier: "premium" },
    ]);
    assert.deepEqual(placementOf(switched, "acme@standard"), []);
    // By name: the order of registration follows when each login's verifier is computed.
    const declared = (run: typeof moving) =>
      placementOf(run, "acme@premium")
        .map((r) => [r.name, r.type, unwrapSecrets(r.inputs), r.provider])
        .sort(([a], [b]) => String(a).localeCompare(String(b)));
    assert.deepEqual(declared(switched), declared(moving));
    const credentials = (await resolve(switched.outputs.credentials!)).value;
    assert.equal(credentials.acme.rw.port, 55433);
    assert.ok(!switched.outputs.pgHba.standard.includes("tenant_acme"));
  });
});

describe("program: editing tier alone", () => {
  // The check's refusal of such an edit: "diffManifests: editing tier alone" in changes.test.ts.
  it("renames the placement, so the engine would have to delete the protected source database, which it refuses", async () => {
    const before = await runProgram("local", [{ id: "acme", tier: "standard" }]);
    const after = await runProgram("local", [{ id: "acme", tier: "premium" }]);
    const dbs = (run: ProgramRun) =>
      run.registrations
        .filter((r) => r.type === "postgresql:index/database:Database")
        .map((r) => r.name);
    assert.deepEqual(dbs(before), ["acme@standard-db"]);
    assert.deepEqual(dbs(after), ["acme@premium-db"]);
    // acme@standard-db leaves the program: a delete the engine plans, and refuses for a protected resource.
    assert.equal(before.options.get("acme@standard-db")?.protect, true);
    assert.equal(before.options.get("acme@standard-db")?.retainOnDelete, true);
    assert.deepEqual(before.options.get("acme@standard-db")?.ignoreChanges, ["template"]);
    assert.ok(
      placementOf(before, "acme@standard").every((r) => PLACEMENT_TYPES.has(r.type)),
      "every resource of the source placement is named after it",
    );
  });
});

describe("program: an offboarded tenant", () => {
  it("declares NOLOGIN logins, no CONNECT for the group, the database and key kept, no pg_hba line", async () => {
    const run = await runProgram("local", [
      { id: "acme", tier: "standard", extra: "state: offboarded\noffboardedAt: 2026-11-01\n" },
      { id: "initech", tier: "standard" },
    ]);
    const inputs = (name: string) =>
      unwrapSecrets(run.mocks.named(name).inputs) as Record<string, unknown>;
    assert.equal(inputs("acme@standard-role-rw").login, false);
    assert.equal(inputs("acme@standard-role-ro").login, false);
    assert.equal(inputs("initech@standard-role-rw").login, true);
    assert.deepEqual(inputs("acme@standard-grant-group-connect").privileges, []);
    assert.deepEqual(inputs("initech@standard-grant-group-connect").privileges, ["CONNECT"]);
    assert.equal(inputs("acme@standard-db").allowConnections, true);
    assert.equal(run.options.get("acme@standard-db")?.protect, true);
    assert.equal(run.registrations.filter((r) => r.name === "acme-key-data").length, 1);
    assert.ok(!run.outputs.pgHba.standard.includes("tenant_acme"));
    assert.equal(
      ofTenant(run.registrations, "acme").length,
      ofTenant(run.registrations, "initech").length,
    );
  });
});
