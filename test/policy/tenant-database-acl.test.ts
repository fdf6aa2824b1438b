import { describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { tenantDatabaseAcl } from "../../policy/policies/tenant-database-acl";
import { stackViolations } from "./run";
import { link, provider, StackFixture, stackResource, tenantFixtures, withProps } from "./util";

/** A tenant's database and its two database grants, the grants' `database` taken from it. */
function tenant(id: string, tier = "standard") {
  const f = tenantFixtures(id, tier);
  const db = stackResource(f.database());
  const revoke = stackResource(f.publicRevoke());
  const connect = stackResource(f.groupConnect());
  link(revoke, "database", db);
  link(connect, "database", db);
  return { f, db, revoke, connect };
}

const all = (...tenants: ReturnType<typeof tenant>[]): StackFixture[] =>
  tenants.flatMap((t) => [t.db, t.revoke, t.connect]);

describe("tenant-database-acl", () => {
  it("passes when every tenant database has its PUBLIC revoke and its group's CONNECT", async () => {
    assert.deepEqual(
      await stackViolations(tenantDatabaseAcl, all(tenant("acme"), tenant("globex", "premium"))),
      [],
    );
  });

  it("reports a database without the PUBLIC revoke", async () => {
    const acme = tenant("acme");
    const globex = tenant("globex");
    assert.deepEqual(
      await stackViolations(tenantDatabaseAcl, [acme.db, acme.connect, ...all(globex)]),
      [
        {
          message:
            "Tenant database tenant_acme must revoke PUBLIC's privileges (a Grant to public on the database with privileges: []).",
          urn: acme.db.urn,
        },
      ],
    );
  });

  it("reports a revoke that still grants something", async () => {
    const acme = tenant("acme");
    acme.revoke.props = { ...acme.revoke.props, privileges: ["TEMPORARY"] };
    assert.deepEqual(
      (await stackViolations(tenantDatabaseAcl, all(acme))).map((v) => v.message),
      [
        "Tenant database tenant_acme must revoke PUBLIC's privileges (a Grant to public on the database with privileges: []).",
      ],
    );
  });

  it("reports a database without its group's CONNECT", async () => {
    const acme = tenant("acme");
    assert.deepEqual(await stackViolations(tenantDatabaseAcl, [acme.db, acme.revoke]), [
      {
        message:
          "Tenant database tenant_acme must grant CONNECT to its tenant's group tenant_acme.",
        urn: acme.db.urn,
      },
    ]);
  });

  it("requires no CONNECT of an offboarded tenant (logins NOLOGIN), but still the PUBLIC revoke", async () => {
    const acme = tenant("acme");
    const logins = [
      stackResource(withProps(acme.f.rw(), { login: false })),
      stackResource(withProps(acme.f.ro(), { login: false })),
    ];
    acme.connect.props = { ...acme.connect.props, privileges: [] };
    assert.deepEqual(await stackViolations(tenantDatabaseAcl, [...all(acme), ...logins]), []);
    assert.deepEqual(
      (await stackViolations(tenantDatabaseAcl, [acme.db, acme.connect, ...logins])).map(
        (v) => v.message,
      ),
      [
        "Tenant database tenant_acme must revoke PUBLIC's privileges (a Grant to public on the database with privileges: []).",
      ],
    );
    // While one login can still log in, the group needs CONNECT.
    const active = [logins[0], stackResource(acme.f.ro())];
    assert.deepEqual(
      (await stackViolations(tenantDatabaseAcl, [...all(acme), ...active])).map((v) => v.message),
      ["Tenant database tenant_acme must grant CONNECT to its tenant's group tenant_acme."],
    );
  });

  it("reports CONNECT granted to another role than the tenant's group", async () => {
    const acme = tenant("acme");
    acme.connect.props = { ...acme.connect.props, role: "tenant_acme_rw" };
    assert.deepEqual(
      (await stackViolations(tenantDatabaseAcl, all(acme))).map((v) => v.message),
      ["Tenant database tenant_acme must grant CONNECT to its tenant's group tenant_acme."],
    );
  });

  it("does not count grants on another tenant's database", async () => {
    const acme = tenant("acme");
    const globex = tenant("globex");
    // globex's grants, pointed at nothing of acme's: acme has none of its own.
    assert.deepEqual(
      (await stackViolations(tenantDatabaseAcl, [acme.db, ...all(globex)])).map((v) => v.message),
      [
        "Tenant database tenant_acme must revoke PUBLIC's privileges (a Grant to public on the database with privileges: []).",
        "Tenant database tenant_acme must grant CONNECT to its tenant's group tenant_acme.",
      ],
    );
  });

  it("matches grants by name on the same cluster when no dependency says which database", async () => {
    const f = tenantFixtures("acme");
    const db = stackResource(f.database());
    const revoke = stackResource(f.publicRevoke());
    const connect = stackResource(f.groupConnect());
    assert.deepEqual(await stackViolations(tenantDatabaseAcl, [db, revoke, connect]), []);
    // The same grants on another cluster do not protect this database.
    const elsewhere = stackResource(withProps(f.groupConnect(), {}));
    elsewhere.provider = provider("premium");
    assert.deepEqual(
      (await stackViolations(tenantDatabaseAcl, [db, revoke, elsewhere])).map((v) => v.message),
      ["Tenant database tenant_acme must grant CONNECT to its tenant's group tenant_acme."],
    );
  });
});
