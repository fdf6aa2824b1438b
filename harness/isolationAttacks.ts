import { describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { Client, DatabaseError } from "pg";
import type { Credentials } from "../infra/components/credentials";
import { tenantNames } from "../infra/naming";
import type { Fleet } from "./fleet";
import { PROVISIONER, TEMPLATE } from "./fleet";

/**
 * The isolation attacks (sections 1 to 5 of the proof): a fleet the program provisioned (two
 * tiers; acme and initech on `standard`, globex on `premium`), attacked with the credentials it
 * exported. Shared by the fast lane (test/integration/isolation.test.ts, the SQL applier) and
 * the engine lane (test/engine/isolation.test.ts, the real engine and provider).
 */

const names = (id: string) => tenantNames("tenant_", id);

export interface Target {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
}

export function target(c: Credentials, overrides: Partial<Target> = {}): Target {
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
export async function connectError(t: Target): Promise<DatabaseError | undefined> {
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

export async function assertRefused(
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

export async function withClient<T>(t: Target, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client(t);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function assertDenied(
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

export const hbaReject = (user: string, database: string) =>
  new RegExp(
    `pg_hba\\.conf rejects connection for host "127\\.0\\.0\\.1", user "${user}", database "${database}"`,
  );

export function isolationAttacks(fleetOf: () => Fleet): void {
  const creds = (id: string, login: "rw" | "ro"): Credentials =>
    fleetOf().outputs.credentials[id][login];

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
      const standard = fleetOf().clusters.standard;
      const rendered = fleetOf().outputs.pgHba.standard;
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
      for (const [tier, cluster] of Object.entries(fleetOf().clusters)) {
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
          const expected = Object.entries(fleetOf().outputs.tenants)
            .filter(([, t]) => t.cluster === tier)
            .map(([id]) => ({ id }))
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
      const acmeKey = fleetOf().outputs.credentials.acme.dataKey;
      const globexKey = fleetOf().outputs.credentials.globex.dataKey;
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
        const su = await fleetOf().clusters.standard.superuserClient("tenant_acme");
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
      const su = await fleetOf().clusters.standard.superuserClient();
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
}
