import { beforeAll, describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import * as path from "path";
import { scramVerifier } from "../../infra/scram";
import { Registration, recordProgram, runPolicies, summarize } from "../../tools/check";
import { loadStack, loadStackTenants } from "../../tools/stack";

/**
 * The check's view of the real program: what it records of each registration (the options and
 * dependencies the engine would see) and that every policy fires on the program's own resources
 * once one of them is changed the way a broken program would declare it.
 */

const ROOT = path.resolve(__dirname, "..", "..");

let local: Registration[];
let production: Registration[];
beforeAll(async () => {
  local = await recordProgram("local", loadStack("local", ROOT), ROOT);
  production = await recordProgram("production", loadStack("production", ROOT), ROOT);
});

const named = (regs: Registration[], name: string) => {
  const found = regs.filter((r) => r.name === name);
  assert.equal(found.length, 1, name);
  return found[0];
};
/** A copy of the registrations with one of them replaced (or removed). */
function changed(
  regs: Registration[],
  name: string,
  change: (r: Registration) => Registration | undefined,
): Registration[] {
  named(regs, name);
  return regs.flatMap((r) => (r.name === name ? (change(structuredClone(r)) ?? []) : [r]));
}
const messages = async (regs: Registration[]) =>
  (await runPolicies(regs)).map((v) => `${v.policy}: ${v.message}`);

describe("recordProgram", () => {
  it("records what the engine sees: engine URNs, protect, providers and property dependencies", () => {
    const db = named(local, "acme@standard-db");
    assert.equal(
      db.urn,
      "urn:pulumi:local::pg-tenants::pg-tenants:index:Tenant$pg-tenants:index:TenantPlacement$postgresql:index/database:Database::acme@standard-db",
    );
    assert.equal(db.protect, true);
    assert.deepEqual(db.ignoreChanges, ["template"]);
    assert.equal(
      db.provider,
      "urn:pulumi:local::pg-tenants::pulumi:providers:postgresql::cluster-standard",
    );
    const rw = named(local, "acme@standard-role-rw");
    // The role's password is the SCRAM verifier of the generated password and the login's salt.
    assert.deepEqual(rw.propertyDependencies.password, [
      "urn:pulumi:local::pg-tenants::pg-tenants:index:Tenant$random:index/randomPassword:RandomPassword::acme-rw-password",
      "urn:pulumi:local::pg-tenants::pg-tenants:index:Tenant$random:index/randomBytes:RandomBytes::acme-rw-salt",
    ]);
    const revoke = named(local, "acme@standard-grant-public-revoke");
    assert.deepEqual(revoke.propertyDependencies.database, [db.urn]);
    assert.equal(local.filter((r) => r.type === "pulumi:pulumi:Stack").length, 0);
  });

  it("never holds a generated secret: passwords are placeholders", async () => {
    // The verifier of the placeholder under the check's all-zero salt.
    assert.equal(
      named(local, "acme@standard-role-rw").inputs.password,
      await scramVerifier("placeholder-not-a-secret", Buffer.alloc(32).toString("base64")),
    );
  });

  it("summarizes per tenant what will exist", () => {
    const tenants = loadStackTenants(loadStack("production", ROOT), ROOT);
    const summary = summarize(production, tenants);
    const globex = summary.find((t) => t.id === "globex");
    assert.deepEqual(globex, {
      id: "globex",
      displayName: "Globex",
      state: "active",
      placements: [
        {
          cluster: "premium",
          host: "premium.db.internal.example.com",
          port: 5432,
          database: "tenant_globex",
          roles: ["tenant_globex", "tenant_globex_owner", "tenant_globex_rw", "tenant_globex_ro"],
        },
      ],
      key: "alias/pg-tenants/production/globex",
    });
  });
});

describe("runPolicies on the program's resources", () => {
  it("finds no violation in the sample stacks", async () => {
    assert.deepEqual(await messages(local), []);
    assert.deepEqual(await messages(production), []);
  });

  it("reports a database declared without protect", async () => {
    const regs = changed(local, "acme@standard-db", (r) => ({ ...r, protect: false }));
    assert.deepEqual(await messages(regs), [
      "tenant-database-settings: Tenant database tenant_acme must be protected (protect: true) so that no plan can drop it.",
    ]);
  });

  it("reports a database that lost its PUBLIC revoke", async () => {
    const regs = changed(local, "acme@standard-grant-public-revoke", () => undefined);
    assert.deepEqual(await messages(regs), [
      "tenant-database-acl: Tenant database tenant_acme must revoke PUBLIC's privileges (a Grant to public on the database with privileges: []).",
    ]);
  });

  it("reports a login whose password is a literal", async () => {
    const regs = changed(local, "globex@premium-role-ro", (r) => ({
      ...r,
      propertyDependencies: { ...r.propertyDependencies, password: [] },
    }));
    assert.deepEqual(await messages(regs), [
      "login-role-secret-passwords: Login role tenant_globex_ro must take its password from a secret generator (random:index/randomPassword:RandomPassword), never a literal.",
    ]);
  });

  it("reports a credentials secret encrypted with another tenant's key", async () => {
    const otherKey = named(production, "initech-key-kms").urn;
    const regs = changed(production, "globex-credentials-rw", (r) => ({
      ...r,
      propertyDependencies: { ...r.propertyDependencies, kmsKeyId: [otherKey] },
    }));
    assert.deepEqual(await messages(regs), [
      "credentials-encrypted-with-own-key: Credentials secret pg-tenants/production/globex/rw of tenant globex must be encrypted with its own tenant's KMS key, not initech-key-kms (tenant initech).",
    ]);
  });

  it("takes levels and thresholds from the pack config, and skips disabled policies", async () => {
    const regs = changed(local, "acme@standard-db", (r) => ({ ...r, protect: false }));
    const advisory = await runPolicies(regs, { "tenant-database-settings": "advisory" });
    assert.deepEqual(
      advisory.map((v) => [v.level, v.tenant, v.resource?.name]),
      [["advisory", "acme", "acme@standard-db"]],
    );
    assert.deepEqual(
      await runPolicies(regs, { "tenant-database-settings": { enforcementLevel: "disabled" } }),
      [],
    );
    const strict = await runPolicies(local, { "login-role-limits": { maxConnectionLimit: 30 } });
    assert.deepEqual(
      strict.map((v) => v.message),
      [
        "Login role tenant_globex_rw must have a connection limit from 1 to 30 (has 40).",
        "Login role tenant_globex_ro must have a connection limit from 1 to 30 (has 40).",
      ],
    );
  });
});
