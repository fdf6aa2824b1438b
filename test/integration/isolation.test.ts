import * as fs from "fs";
import * as path from "path";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { Client } from "pg";
import type { Credentials } from "../../infra/components/credentials";
import { tenantNames } from "../../infra/naming";
import type { RunningCluster } from "../../tools/cluster";
import { ApplyingMocks } from "../../harness/applier";
import { Fleet, FleetTenant, PROVISIONER, provisionFleet, TEMPLATE } from "../../harness/fleet";
import {
  assertRefused,
  connectError,
  hbaReject,
  isolationAttacks,
  target,
} from "../../harness/isolationAttacks";

/**
 * The isolation proof: the real program applied to real PostgreSQL clusters (two tiers, three
 * tenants) with the pg_hba.conf it renders, then attacked with the credentials it exported.
 * A = acme (standard), B = initech (same cluster as A), C = globex (premium cluster).
 */

const TENANTS: FleetTenant[] = [
  { id: "acme", tier: "standard" },
  { id: "initech", tier: "standard" },
  { id: "globex", tier: "premium" },
];
const names = (id: string) => tenantNames("tenant_", id);

let fleet: Fleet;

beforeAll(async () => {
  // Room in the connection budget for the tenant section 7 adds (three on standard).
  fleet = await provisionFleet({
    tiers: ["standard", "premium"],
    tenants: TENANTS,
    server: { maxConnections: 200 },
  });
});

afterAll(async () => {
  await fleet?.stop();
});

isolationAttacks(() => fleet);

const creds = (id: string, login: "rw" | "ro"): Credentials => fleet.outputs.credentials[id][login];

/** Catalog state of one cluster that the program manages, by name (no OIDs), for equality. */
async function snapshot(cluster: RunningCluster, databases: string[]) {
  const su = await cluster.superuserClient();
  const rows = async (sql: string, c: Client = su) => (await c.query(sql)).rows;
  try {
    const result: Record<string, unknown> = {
      // The password hash is compared too: a re-run must not reset (re-salt) any password.
      roles:
        await rows(`SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
          r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil::text, r.rolconfig::text,
          md5(coalesce(a.rolpassword, '')) AS password
          FROM pg_roles r JOIN pg_authid a ON a.oid = r.oid WHERE r.rolname !~ '^pg_' ORDER BY r.rolname`),
      memberships: await rows(`SELECT r.rolname AS role, m.rolname AS member, g.rolname AS grantor,
          a.admin_option, a.inherit_option, a.set_option
          FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
          JOIN pg_roles g ON g.oid = a.grantor ORDER BY 1, 2, 3`),
      databases:
        await rows(`SELECT datname, pg_get_userbyid(datdba) AS owner, datacl::text, datconnlimit,
          datallowconn, datistemplate FROM pg_database ORDER BY datname`),
    };
    for (const db of databases) {
      const c = await cluster.superuserClient(db);
      try {
        result[db] = {
          relations: await rows(
            `SELECT n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner) AS owner, c.relacl::text
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1, 2`,
            c,
          ),
          schemas: await rows(
            `SELECT nspname, pg_get_userbyid(nspowner) AS owner, nspacl::text FROM pg_namespace ORDER BY 1`,
            c,
          ),
          defaults: await rows(
            `SELECT pg_get_userbyid(defaclrole) AS owner, defaclnamespace::regnamespace::text AS schema,
              defaclobjtype, defaclacl::text FROM pg_default_acl ORDER BY 1, 2, 3`,
            c,
          ),
          extensions: await rows(
            `SELECT extname, pg_get_userbyid(extowner) AS owner, extversion FROM pg_extension ORDER BY 1`,
            c,
          ),
        };
      } finally {
        await c.end();
      }
    }
    return result;
  } finally {
    await su.end();
  }
}

async function snapshotFleet(tenants: readonly FleetTenant[]) {
  const out: Record<string, Awaited<ReturnType<typeof snapshot>>> = {};
  for (const [tier, cluster] of Object.entries(fleet.clusters)) {
    out[tier] = await snapshot(
      cluster,
      tenants.filter((t) => t.tier === tier).map((t) => names(t.id).database),
    );
  }
  return out;
}

describe("6. re-applying is safe", () => {
  it("a second run over the same clusters succeeds and leaves roles, memberships, ACLs and databases byte-for-byte equal", async () => {
    const beforeRun = await snapshotFleet(TENANTS);
    const second = await fleet.apply(TENANTS);
    // The second run went through the provider's update path, not a no-op...
    assert.ok(
      second.statements.includes(`REVOKE "tenant_acme" FROM "tenant_acme_rw"`),
      "roles were updated (memberships re-granted)",
    );
    assert.ok(
      second.statements.includes(
        `GRANT DELETE,INSERT,SELECT,UPDATE ON ALL TABLES IN SCHEMA "app" TO "tenant_acme_rw"`,
      ),
      "grants were re-applied",
    );
    // ...kept the provisioning role's membership of every owner (no GrantRole replacement)...
    assert.deepEqual(
      second.statements.filter((s) => /^REVOKE "tenant_\w+_owner" FROM /.test(s)),
      [],
      "the provisioning role's membership of a tenant owner was revoked",
    );
    // ...and created nothing twice.
    assert.deepEqual(
      second.statements.filter((s) => /^CREATE (ROLE|DATABASE)/.test(s)),
      [],
    );
    assert.deepEqual(await snapshotFleet(TENANTS), beforeRun);
  });
});

describe("7. onboarding a tenant leaves the others alone", () => {
  it("adding hooli to the running set provisions it and changes no ACL, membership or role of acme, initech or globex", async () => {
    const others = (snap: Awaited<ReturnType<typeof snapshotFleet>>) => {
      const own = new Set(TENANTS.flatMap((t) => Object.values(names(t.id))));
      const shared = new Set(["postgres", "template0", "template1", TEMPLATE]);
      return Object.fromEntries(
        Object.entries(snap).map(([tier, s]) => [
          tier,
          {
            ...s,
            roles: (s.roles as Array<{ rolname: string }>).filter((r) => own.has(r.rolname)),
            memberships: (s.memberships as Array<{ role: string; member: string }>).filter(
              (m) => own.has(m.role) || own.has(m.member),
            ),
            databases: (s.databases as Array<{ datname: string }>).filter(
              (d) => own.has(d.datname) || shared.has(d.datname),
            ),
          },
        ]),
      );
    };
    const beforeRun = others(await snapshotFleet(TENANTS));
    const withHooli = [...TENANTS, { id: "hooli", tier: "standard" }];
    await fleet.apply(withHooli);
    assert.deepEqual(others(await snapshotFleet(TENANTS)), beforeRun);

    const hooli = creds("hooli", "rw");
    assert.equal(
      await connectError(target(hooli)),
      undefined,
      "hooli's rw login opens hooli's database",
    );
    await assertRefused(
      target(hooli, { database: "tenant_acme" }),
      "28000",
      hbaReject(hooli.user, "tenant_acme"),
      "hooli's rw connecting to acme's database",
    );
    await assertRefused(
      target(creds("acme", "rw"), { database: "tenant_hooli" }),
      "28000",
      hbaReject("tenant_acme_rw", "tenant_hooli"),
      "acme's rw connecting to hooli's database",
    );
  });
});

describe("hostile tenant ids", () => {
  it("are refused by validation before any statement reaches a cluster", async () => {
    const hostile: Record<string, string> = {
      "quote.yaml": `acme'; DROP ROLE postgres; --`,
      "dquote.yaml": `x"; GRANT postgres TO tenant_acme_rw; --`,
      "semicolon.yaml": "a;b",
      "comment.yaml": "acme--",
      "lookalike.yaml": "\u0430cme",
      "traversal.yaml": "../etc",
      "long.yaml": "a".repeat(60),
    };
    for (const [file, id] of Object.entries(hostile)) {
      fs.writeFileSync(
        path.join(fleet.tenantsDir, file),
        `id: ${JSON.stringify(id)}\ndisplayName: Hostile\ntier: standard\n`,
      );
    }
    const statements = fleet.statements.length;
    const connections = fleet.applier.connections;
    await assert.rejects(fleet.apply(), (err: Error) => {
      assert.match(err.message, /The tenants manifest has \d+ problem\(s\):/);
      for (const file of Object.keys(hostile).filter((f) => f !== "long.yaml")) {
        assert.match(
          err.message,
          new RegExp(`${file}: id: must match \\^\\[a-z\\]\\[a-z0-9_\\]\\*\\$`),
          `${file} is refused`,
        );
      }
      assert.match(
        err.message,
        /long\.yaml: id: is 60 characters; at most \d+ fit in PostgreSQL's 63-byte names/,
      );
      return true;
    });
    assert.equal(
      fleet.statements.length,
      statements,
      "statements were issued for a hostile manifest",
    );
    assert.equal(
      fleet.applier.connections,
      connections,
      "a cluster was contacted for a hostile manifest",
    );
  });
});

describe("the applier follows the provider where the program does not reach", () => {
  it("grants a table owner to the provisioning role for the grant and revokes it after, and fails when it cannot connect", async () => {
    const premium = fleet.clusters.premium;
    const password = (fleet.config.clusterPasswords as Record<string, string>).premium;
    const provisioner = await premium.provisionerClient();
    const su = await premium.superuserClient();
    const applier = new ApplyingMocks();
    try {
      // An owner the provisioning role created (so it may grant it) but is no SET member of.
      await provisioner.query("CREATE ROLE scratch_owner NOLOGIN");
      await provisioner.query("CREATE ROLE scratch_reader NOLOGIN");
      await su.query(`CREATE DATABASE scratch OWNER scratch_owner TEMPLATE "${TEMPLATE}"`);
      const provider = await applier.newResource({
        type: "pulumi:providers:postgresql",
        name: "scratch",
        inputs: {
          host: premium.host,
          port: String(premium.port),
          database: "postgres",
          username: PROVISIONER,
          password,
        },
        custom: true,
      });
      const grant = {
        type: "postgresql:index/grant:Grant",
        name: "scratch-grant",
        inputs: {
          role: "scratch_reader",
          database: "scratch",
          schema: "app",
          objectType: "table",
          privileges: ["SELECT"],
        },
        provider: `urn:pulumi:integration::pg-tenants::pulumi:providers:postgresql::scratch::${provider.id}`,
        custom: true,
      };
      await applier.newResource(grant);
      const i = applier.statements.indexOf(`GRANT "scratch_owner" TO "${PROVISIONER}"`);
      assert.ok(i > 0, "the owner was granted to the provisioning role for the grant");
      assert.deepEqual(
        applier.statements.slice(i + 1).filter((s) => /^(GRANT|REVOKE) /.test(s)),
        [
          `REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA "app" FROM "scratch_reader"`,
          `GRANT SELECT ON ALL TABLES IN SCHEMA "app" TO "scratch_reader"`,
          `REVOKE "scratch_owner" FROM "${PROVISIONER}"`,
        ],
      );
      const acl = await su.query(
        "SELECT count(*)::int AS n FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member WHERE r.rolname = 'scratch_owner' AND m.rolname = $1 AND a.set_option",
        [PROVISIONER],
      );
      assert.equal(acl.rows[0].n, 0, "the temporary membership outlived the grant");

      // Without the membership the program keeps (GrantRole <id>@<tier>-provisioner-owner), the
      // provider cannot even connect once PUBLIC's CONNECT is revoked.
      await su.query("REVOKE CONNECT ON DATABASE scratch FROM PUBLIC");
      await applier.close();
      await assert.rejects(applier.newResource(grant), /permission denied for database "scratch"/);
    } finally {
      await applier.close();
      await su.query("DROP DATABASE IF EXISTS scratch");
      await su.query("DROP ROLE IF EXISTS scratch_owner");
      await su.query("DROP ROLE IF EXISTS scratch_reader");
      await su.end();
      await provisioner.end();
    }
  });

  it("fails on a resource type it does not know instead of skipping it", async () => {
    const applier = new ApplyingMocks();
    await assert.rejects(
      applier.newResource({ type: "aws:kms/key:Key", name: "k", inputs: {}, custom: true }),
      /applying aws:kms\/key:Key k: the applier does not know resource type aws:kms\/key:Key/,
    );
    assert.deepEqual(applier.statements, []);
  });
});
