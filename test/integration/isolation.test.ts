import * as fs from "fs";
import * as path from "path";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { Client, DatabaseError } from "pg";
import type { Credentials } from "../../infra/components/credentials";
import { tenantNames } from "../../infra/naming";
import type { RunningCluster } from "../../tools/cluster";
import { ApplyingMocks } from "../../harness/applier";
import { Fleet, FleetTenant, PROVISIONER, provisionFleet, TEMPLATE } from "../../harness/fleet";

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
  fleet = await provisionFleet({ tiers: ["standard", "premium"], tenants: TENANTS });
});

afterAll(async () => {
  await fleet?.stop();
});

const creds = (id: string, login: "rw" | "ro"): Credentials => fleet.outputs.credentials[id][login];

interface Target {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
}

function target(c: Credentials, overrides: Partial<Target> = {}): Target {
  return {
    host: c.host,
    port: c.port,
    database: c.database,
    user: c.user,
    password: c.password,
    ...overrides,
  };
}

/** The error PostgreSQL answered a connection attempt with, or undefined if it was let in. */
async function connectError(t: Target): Promise<DatabaseError | undefined> {
  const client = new Client({ ...t, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.end();
    return undefined;
  } catch (err) {
    if (err instanceof DatabaseError) return err;
    throw err;
  }
}

async function assertRefused(
  t: Target,
  code: string,
  message: RegExp,
  tried: string,
): Promise<void> {
  const err = await connectError(t);
  assert.ok(err !== undefined, `${tried}: the connection was accepted`);
  assert.equal(err.code, code, `${tried}: refused with ${err.code} ${err.message}`);
  assert.match(err.message, message, tried);
}

async function withClient<T>(t: Target, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client(t);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function assertDenied(
  c: Client,
  sql: string,
  message: RegExp,
  tried: string,
  params: unknown[] = [],
) {
  await assert.rejects(
    c.query(sql, params),
    (err: DatabaseError) => {
      assert.equal(
        err.code,
        "42501",
        `${tried}: expected insufficient_privilege, got ${err.code} ${err.message}`,
      );
      assert.match(err.message, message, tried);
      return true;
    },
    `${tried}: the statement succeeded`,
  );
}

const hbaReject = (user: string, database: string) =>
  new RegExp(
    `pg_hba\\.conf rejects connection for host "127\\.0\\.0\\.1", user "${user}", database "${database}"`,
  );

describe("1. a tenant's logins reach no other database", () => {
  for (const login of ["rw", "ro"] as const) {
    it(`acme's ${login} login is refused by pg_hba for initech's database (same cluster), globex's (other cluster), postgres, template1 and the template`, async () => {
      const a = creds("acme", login);
      const globex = creds("globex", "rw");
      const attempts: Array<[string, Target]> = [
        ["tenant_initech", target(a, { database: "tenant_initech" })],
        [
          "tenant_globex",
          target(a, { host: globex.host, port: globex.port, database: "tenant_globex" }),
        ],
        ["postgres", target(a, { database: "postgres" })],
        ["template1", target(a, { database: "template1" })],
        [TEMPLATE, target(a, { database: TEMPLATE })],
      ];
      for (const [db, t] of attempts) {
        await assertRefused(t, "28000", hbaReject(a.user, db), `${a.user} connecting to ${db}`);
      }
      // The same credentials do open the tenant's own database: the refusals above are not a typo.
      assert.equal(
        await connectError(target(a)),
        undefined,
        `${a.user} connecting to its own database`,
      );
    });
  }

  it("a login that pg_hba admits but that has no CONNECT privilege is refused by the privilege layer alone", async () => {
    const standard = fleet.clusters.standard;
    const rendered = fleet.outputs.pgHba.standard;
    // Admit every role to every database, before the final rejects: only privileges remain.
    const permissive = rendered.replace(
      "local all all reject",
      "host all all 127.0.0.1/32 scram-sha-256\nlocal all all reject",
    );
    assert.notEqual(permissive, rendered, "the rendered pg_hba.conf ends with its reject lines");
    await standard.writeHba(permissive);
    try {
      for (const login of ["rw", "ro"] as const) {
        const a = creds("acme", login);
        for (const db of ["tenant_initech", "postgres", "template1"]) {
          await assertRefused(
            target(a, { database: db }),
            "42501",
            new RegExp(`permission denied for database "${db}"`),
            `${a.user} connecting to ${db} with pg_hba admitting it`,
          );
        }
        // The template accepts no connection from anyone, whatever pg_hba and privileges say.
        await assertRefused(
          target(a, { database: TEMPLATE }),
          "55000",
          new RegExp(`database "${TEMPLATE}" is not currently accepting connections`),
          `${a.user} connecting to the template with pg_hba admitting it`,
        );
      }
    } finally {
      await standard.writeHba(rendered);
    }
  });
});

describe("2. what each login may do inside its own database", () => {
  it("acme's ro login reads but cannot INSERT, UPDATE, DELETE, TRUNCATE, use sequences or create anything", async () => {
    await withClient(target(creds("acme", "ro")), async (c) => {
      await c.query("SELECT count(*) FROM app.customers");
      const tried = (what: string) => `tenant_acme_ro trying ${what}`;
      await assertDenied(
        c,
        "INSERT INTO app.customers (email, name) VALUES ('ro@example.com', 'ro')",
        /permission denied for table customers/,
        tried("INSERT"),
      );
      await assertDenied(
        c,
        "UPDATE app.customers SET name = 'x'",
        /permission denied for table customers/,
        tried("UPDATE"),
      );
      await assertDenied(
        c,
        "DELETE FROM app.customers",
        /permission denied for table customers/,
        tried("DELETE"),
      );
      await assertDenied(
        c,
        "TRUNCATE app.events",
        /permission denied for table events/,
        tried("TRUNCATE"),
      );
      await assertDenied(
        c,
        "SELECT nextval('app.events_id_seq')",
        /permission denied for sequence events_id_seq/,
        tried("nextval"),
      );
      await assertDenied(
        c,
        "CREATE TABLE app.ro_table (id int)",
        /permission denied for schema app/,
        tried("CREATE TABLE in app"),
      );
      await assertDenied(
        c,
        "CREATE TABLE public.ro_table (id int)",
        /permission denied for schema public/,
        tried("CREATE TABLE in public"),
      );
      await assertDenied(
        c,
        "CREATE SCHEMA ro_schema",
        /permission denied for database tenant_acme/,
        tried("CREATE SCHEMA"),
      );
      await assertDenied(
        c,
        "CREATE TEMP TABLE ro_temp (id int)",
        /permission denied to create temporary tables in database "tenant_acme"/,
        tried("CREATE TEMP TABLE"),
      );
    });
  });

  it("acme's rw login does DML on app tables but cannot create, alter, drop or truncate anything, nor create roles, databases, extensions or event triggers", async () => {
    await withClient(target(creds("acme", "rw")), async (c) => {
      const inserted = await c.query<{ id: string }>(
        "INSERT INTO app.customers (email, name) VALUES ($1, $2) RETURNING id",
        ["dml@acme.example", "DML"],
      );
      await c.query("UPDATE app.customers SET name = $1 WHERE id = $2", [
        "DML 2",
        inserted.rows[0].id,
      ]);
      assert.equal(
        (await c.query("SELECT name FROM app.customers WHERE id = $1", [inserted.rows[0].id]))
          .rows[0].name,
        "DML 2",
      );
      await c.query("DELETE FROM app.customers WHERE id = $1", [inserted.rows[0].id]);

      const tried = (what: string) => `tenant_acme_rw trying ${what}`;
      await assertDenied(
        c,
        "CREATE TABLE public.rw_table (id int)",
        /permission denied for schema public/,
        tried("CREATE TABLE in public"),
      );
      await assertDenied(
        c,
        "CREATE TABLE app.rw_table (id int)",
        /permission denied for schema app/,
        tried("CREATE TABLE in app"),
      );
      await assertDenied(
        c,
        "CREATE VIEW app.rw_view AS SELECT 1",
        /permission denied for schema app/,
        tried("CREATE VIEW in app"),
      );
      await assertDenied(
        c,
        "CREATE FUNCTION public.rw_f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        /permission denied for schema public/,
        tried("CREATE FUNCTION in public"),
      );
      await assertDenied(
        c,
        "CREATE SCHEMA rw_schema",
        /permission denied for database tenant_acme/,
        tried("CREATE SCHEMA"),
      );
      await assertDenied(
        c,
        "CREATE TEMP TABLE rw_temp (id int)",
        /permission denied to create temporary tables in database "tenant_acme"/,
        tried("CREATE TEMP TABLE"),
      );
      await assertDenied(
        c,
        "ALTER TABLE app.customers ADD COLUMN evil text",
        /must be owner of table customers/,
        tried("ALTER TABLE"),
      );
      await assertDenied(
        c,
        "DROP TABLE app.invoices",
        /must be owner of table invoices/,
        tried("DROP TABLE"),
      );
      await assertDenied(
        c,
        "TRUNCATE app.events",
        /permission denied for table events/,
        tried("TRUNCATE"),
      );
      await assertDenied(
        c,
        "CREATE ROLE rw_role",
        /permission denied to create role/,
        tried("CREATE ROLE"),
      );
      await assertDenied(
        c,
        "CREATE DATABASE rw_db",
        /permission denied to create database/,
        tried("CREATE DATABASE"),
      );
      await assertDenied(
        c,
        "CREATE EXTENSION hstore",
        /permission denied to create extension "hstore"/,
        tried("CREATE EXTENSION hstore (trusted)"),
      );
      await assertDenied(
        c,
        "CREATE EXTENSION dblink",
        /permission denied to create extension "dblink"/,
        tried("CREATE EXTENSION dblink (untrusted)"),
      );
      await assertDenied(
        c,
        "CREATE EVENT TRIGGER rw_trigger ON ddl_command_start EXECUTE FUNCTION pg_catalog.now()",
        /permission denied to create event trigger "rw_trigger"/,
        tried("CREATE EVENT TRIGGER"),
      );
    });
  });
});

describe("3. no way up or sideways through roles", () => {
  for (const login of ["rw", "ro"] as const) {
    it(`acme's ${login} login cannot SET ROLE to another tenant's roles, its owner, the provisioning role, postgres or pg_database_owner, nor grant its group`, async () => {
      const a = creds("acme", login);
      await withClient(target(a), async (c) => {
        const b = names("initech");
        for (const role of [
          b.group,
          b.rw,
          b.ro,
          b.owner,
          names("acme").owner,
          PROVISIONER,
          "postgres",
          "pg_database_owner",
        ]) {
          await assertDenied(
            c,
            `SET ROLE "${role}"`,
            new RegExp(`permission denied to set role "${role}"`),
            `${a.user} trying SET ROLE ${role}`,
          );
        }
        await assertDenied(
          c,
          `GRANT "tenant_acme" TO "tenant_initech_rw"`,
          /permission denied to grant role "tenant_acme"/,
          `${a.user} trying to grant its own group to initech's rw`,
        );
      });
    });
  }

  it("no tenant role on either cluster has a cluster privilege or a membership besides its own group", async () => {
    for (const [tier, cluster] of Object.entries(fleet.clusters)) {
      const su = await cluster.superuserClient();
      try {
        const roles = await su.query(
          `SELECT rolname FROM pg_roles WHERE rolname LIKE 'tenant\\_%'
             AND (rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls)`,
        );
        assert.deepEqual(roles.rows, [], `tenant roles with cluster privileges on ${tier}`);
        const memberships = await su.query<{ role: string; member: string }>(
          `SELECT r.rolname AS role, m.rolname AS member FROM pg_auth_members a
             JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
            WHERE m.rolname LIKE 'tenant\\_%' ORDER BY 2, 1`,
        );
        const expected = TENANTS.filter((t) => t.tier === tier)
          .flatMap((t) => [
            { role: names(t.id).group, member: names(t.id).ro },
            { role: names(t.id).group, member: names(t.id).rw },
          ])
          .sort((x, y) => (x.member < y.member ? -1 : 1));
        assert.deepEqual(memberships.rows, expected, `memberships of tenant roles on ${tier}`);
      } finally {
        await su.end();
      }
    }
  });
});

describe("4. data keys", () => {
  it("data acme encrypts with its key (a bind parameter) cannot be decrypted with globex's key", async () => {
    const acmeKey = fleet.outputs.credentials.acme.dataKey;
    const globexKey = fleet.outputs.credentials.globex.dataKey;
    assert.equal(Buffer.from(acmeKey, "base64").length, 32, "acme's data key is 32 bytes");
    assert.notEqual(acmeKey, globexKey, "tenants share no data key");

    await withClient(target(creds("acme", "rw")), async (c) => {
      const customer = await c.query<{ id: string }>(
        "INSERT INTO app.customers (email, name) VALUES ($1, $2) RETURNING id",
        ["billing@acme.example", "Billing"],
      );
      const pid = (await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0].pid;
      const insert =
        "INSERT INTO app.invoices (customer_id, amount_cents, note_encrypted) VALUES ($1, $2, pgp_sym_encrypt($3, $4)) RETURNING id";
      const invoice = await c.query<{ id: string }>(insert, [
        customer.rows[0].id,
        1200,
        "card ending 4242",
        acmeKey,
      ]);
      // The last statement the server saw from this session is the INSERT itself, with
      // placeholders: the key travelled as a bind parameter, never in the SQL text.
      const su = await fleet.clusters.standard.superuserClient("tenant_acme");
      try {
        const seen = await su.query<{ query: string }>(
          "SELECT query FROM pg_stat_activity WHERE pid = $1",
          [pid],
        );
        assert.equal(seen.rows[0].query, insert, "the server saw the INSERT with placeholders");
        assert.ok(!seen.rows[0].query.includes(acmeKey), "the key appears in SQL text");
        const stored = await su.query<{ note: Buffer }>(
          "SELECT note_encrypted AS note FROM app.invoices WHERE id = $1",
          [invoice.rows[0].id],
        );
        assert.ok(
          !stored.rows[0].note.toString("latin1").includes("4242"),
          "the note is stored in clear",
        );
      } finally {
        await su.end();
      }
      const own = await c.query<{ note: string }>(
        "SELECT pgp_sym_decrypt(note_encrypted, $1) AS note FROM app.invoices WHERE id = $2",
        [acmeKey, invoice.rows[0].id],
      );
      assert.equal(own.rows[0].note, "card ending 4242");
      await assert.rejects(
        c.query("SELECT pgp_sym_decrypt(note_encrypted, $1) FROM app.invoices WHERE id = $2", [
          globexKey,
          invoice.rows[0].id,
        ]),
        /Wrong key or corrupt data/,
        "decrypting acme's note with globex's key succeeded",
      );
    });
  });
});

describe("5. bad credentials", () => {
  it("a wrong password, an expired role and a missing role are refused", async () => {
    const a = creds("acme", "rw");
    await assertRefused(
      target(a, { password: a.password + "x" }),
      "28P01",
      /password authentication failed for user "tenant_acme_rw"/,
      "tenant_acme_rw with a wrong password",
    );
    const ro = creds("acme", "ro");
    const su = await fleet.clusters.standard.superuserClient();
    try {
      await su.query(`ALTER ROLE "tenant_acme_ro" VALID UNTIL '2000-01-01'`);
      await assertRefused(
        target(ro),
        "28P01",
        /password authentication failed for user "tenant_acme_ro"/,
        "tenant_acme_ro after it expired",
      );
    } finally {
      await su.query(`ALTER ROLE "tenant_acme_ro" VALID UNTIL 'infinity'`);
      await su.end();
    }
    await assertRefused(
      target(a, { user: "tenant_nobody_rw" }),
      "28000",
      hbaReject("tenant_nobody_rw", "tenant_acme"),
      "a role that does not exist",
    );
  });
});

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
