import * as net from "net";
import { spawnSync } from "child_process";
import { describe, expect, it } from "@jest/globals";
import { Client, DatabaseError } from "pg";
import type { Credentials } from "../infra/components/credentials";
import {
  ADVISORY_LOCK_FUNCTIONS,
  CLUSTER_RELATIONS,
  CONTAINMENT_SCHEMA,
  LARGE_OBJECT_WRITE_FUNCTIONS,
} from "../infra/containment";
import { connectAs, Fleet, PROVISIONER } from "./fleet";

/**
 * The containment attacks (docs/containment.md), one test per try, as acme's own rw and ro
 * logins on a fleet the program provisioned: each asserts PostgreSQL's exact refusal or the
 * bound that holds. Shared by the fast lane (test/integration/containment.test.ts) and the
 * engine lane. The fleet needs tenants acme and initech on `standard` (and may have more).
 */

export const CONTAINMENT_TEMP_FILE_LIMIT_MB = 8;

type Login = "rw" | "ro";

async function withLogin<T>(fleet: Fleet, login: Login, fn: (c: Client) => Promise<T>): Promise<T> {
  const c = await connectAs(fleet.outputs.credentials.acme[login]);
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** The statement's refusal: SQLSTATE and message (undefined when it succeeded). */
async function refusal(
  c: Client,
  sql: string,
): Promise<{ code: string; message: string } | undefined> {
  try {
    await c.query(sql);
    return undefined;
  } catch (err) {
    if (!(err instanceof DatabaseError)) throw err;
    return { code: err.code ?? "", message: err.message };
  }
}

/** Connects, or returns the refusal (SQLSTATE and message). */
async function tryConnect(config: ConstructorParameters<typeof Client>[0]) {
  const c = new Client(config);
  c.on("error", () => undefined);
  try {
    await c.connect();
    return { client: c };
  } catch (err) {
    const e = err as DatabaseError;
    return { refused: { code: e.code ?? "", message: e.message } };
  }
}

const credsOf = (fleet: Fleet, login: Login): Credentials => fleet.outputs.credentials.acme[login];

export function containmentAttacks(fleetOf: () => Fleet, pgVersion: 15 | 17): void {
  describe.each(["ro", "rw"] as const)("acme's %s login", (login) => {
    it("cannot take any advisory lock, session or transaction, exclusive or shared, blocking or try", async () => {
      await withLogin(fleetOf(), login, async (c) => {
        const results: Record<string, unknown> = {};
        for (const fn of ADVISORY_LOCK_FUNCTIONS) {
          results[`${fn}(bigint)`] = await refusal(c, `SELECT ${fn}(1::bigint)`);
          results[`${fn}(int, int)`] = await refusal(c, `SELECT ${fn}(1, 2)`);
        }
        const expected = Object.fromEntries(
          ADVISORY_LOCK_FUNCTIONS.flatMap((fn) => [
            [`${fn}(bigint)`, { code: "42501", message: `permission denied for function ${fn}` }],
            [`${fn}(int, int)`, { code: "42501", message: `permission denied for function ${fn}` }],
          ]),
        );
        expect(results).toEqual(expected);
        // The capped wrappers are the capability's: refused without it.
        expect(await refusal(c, `SELECT ${CONTAINMENT_SCHEMA}.advisory_lock(1)`)).toEqual({
          code: "42501",
          message: `permission denied for schema ${CONTAINMENT_SCHEMA}`,
        });
        // Unlocking (what DISCARD ALL and poolers do) still works and takes nothing.
        expect((await c.query("SELECT pg_advisory_unlock_all() AS r")).rows).toEqual([{ r: "" }]);
      });
    });

    it("cannot hold the advisory lock the provider takes on its roles before a grant (the deploy stall)", async () => {
      await withLogin(fleetOf(), login, async (c) => {
        expect(
          await refusal(
            c,
            "SELECT pg_advisory_lock(oid::bigint) FROM pg_roles WHERE rolname = current_user",
          ),
        ).toEqual({ code: "42501", message: "permission denied for function pg_advisory_lock" });
      });
    });

    it("cannot create, write or remove a large object, nor read a server file into one", async () => {
      await withLogin(fleetOf(), login, async (c) => {
        const tries: Record<string, string> = {
          lo_create: "SELECT lo_create(0)",
          lo_creat: "SELECT lo_creat(-1)",
          lo_from_bytea: "SELECT lo_from_bytea(0, 'x')",
          lo_put: "SELECT lo_put(1, 0, 'x')",
          lowrite: "SELECT lowrite(0, 'x')",
          lo_truncate: "SELECT lo_truncate(0, 0)",
          lo_truncate64: "SELECT lo_truncate64(0, 0)",
          lo_unlink: "SELECT lo_unlink(1)",
        };
        expect(Object.keys(tries).sort()).toEqual([...LARGE_OBJECT_WRITE_FUNCTIONS].sort());
        for (const [fn, sql] of Object.entries(tries)) {
          expect({ fn, refused: await refusal(c, sql) }).toEqual({
            fn,
            refused: { code: "42501", message: `permission denied for function ${fn}` },
          });
        }
        expect(await refusal(c, "SELECT lo_import('/etc/passwd')")).toEqual({
          code: "42501",
          message: "permission denied for function lo_import",
        });
      });
    });

    it("reads none of the shared catalogs and cluster-wide views", async () => {
      await withLogin(fleetOf(), login, async (c) => {
        const present = (
          await fleetOf()
            .clusters.standard.superuserClient()
            .then(async (su) => {
              try {
                return (
                  await su.query<{ relname: string; relkind: string }>(
                    "SELECT relname, relkind FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace AND relname = ANY($1)",
                    [CLUSTER_RELATIONS],
                  )
                ).rows;
              } finally {
                await su.end();
              }
            })
        ).sort((a, b) => a.relname.localeCompare(b.relname));
        expect(present.length).toBeGreaterThan(20);
        // pg_roles keeps two columns for psql (PUBLIC_ROLE_COLUMNS): checked below.
        for (const { relname, relkind } of present.filter((r) => r.relname !== "pg_roles")) {
          const kind = relkind === "v" ? "view" : "table";
          expect({
            relname,
            refused: await refusal(c, `SELECT 1 FROM pg_catalog.${relname} LIMIT 1`),
          }).toEqual({
            relname,
            refused: { code: "42501", message: `permission denied for ${kind} ${relname}` },
          });
        }
        // What psql's \d needs stays: role names, and nothing else of pg_roles.
        expect((await c.query("SELECT count(*) > 0 AS ok FROM pg_roles")).rows).toEqual([
          { ok: true },
        ]);
        expect(await refusal(c, "SELECT rolconnlimit FROM pg_roles")).toEqual({
          code: "42501",
          message: "permission denied for view pg_roles",
        });
      });
    });

    it("calls none of the functions that read other databases' activity, locks, WAL or transaction ids", async () => {
      await withLogin(fleetOf(), login, async (c) => {
        const tries: Record<string, string> = {
          pg_stat_get_activity: "SELECT * FROM pg_stat_get_activity(NULL)",
          pg_stat_get_db_xact_commit: "SELECT pg_stat_get_db_xact_commit(1)",
          pg_stat_get_db_numbackends: "SELECT pg_stat_get_db_numbackends(1)",
          pg_lock_status: "SELECT * FROM pg_lock_status()",
          pg_current_wal_lsn: "SELECT pg_current_wal_lsn()",
          txid_current: "SELECT txid_current()",
          pg_current_xact_id: "SELECT pg_current_xact_id()",
          has_database_privilege: "SELECT has_database_privilege('tenant_initech', 'CONNECT')",
          pg_control_checkpoint: "SELECT * FROM pg_control_checkpoint()",
        };
        for (const [fn, sql] of Object.entries(tries)) {
          expect({ fn, refused: await refusal(c, sql) }).toEqual({
            fn,
            refused: { code: "42501", message: `permission denied for function ${fn}` },
          });
        }
      });
    });

    it("cannot lift the temp file limit, for the session or through its own role settings", async () => {
      await withLogin(fleetOf(), login, async (c) => {
        const denied = {
          code: "42501",
          message: 'permission denied to set parameter "temp_file_limit"',
        };
        expect(await refusal(c, "SET temp_file_limit = -1")).toEqual(denied);
        expect(await refusal(c, "ALTER ROLE CURRENT_USER SET temp_file_limit = -1")).toEqual(
          denied,
        );
        expect(
          await refusal(
            c,
            `ALTER ROLE CURRENT_USER IN DATABASE tenant_acme SET temp_file_limit = -1`,
          ),
        ).toEqual(denied);
        await c.query("SET work_mem = '64kB'");
        expect(
          await refusal(
            c,
            "SELECT count(*) FROM (SELECT g FROM generate_series(1, 2000000) g ORDER BY g DESC) s",
          ),
        ).toEqual({
          code: "53400",
          message: `temporary file size exceeds temp_file_limit (${CONTAINMENT_TEMP_FILE_LIMIT_MB * 1024}kB)`,
        });
      });
    });
  });

  describe("connection slots", () => {
    it("a tenant at both logins' limits is refused further sessions, and the provisioning role still reaches its database", async () => {
      const fleet = fleetOf();
      const opened: Client[] = [];
      try {
        for (const login of ["rw", "ro"] as const) {
          const creds = credsOf(fleet, login);
          for (let i = 0; i < 20; i++) {
            const r = await tryConnect({ ...creds });
            if (r.client === undefined)
              throw new Error(`${login} refused at ${i}: ${r.refused?.message}`);
            opened.push(r.client);
          }
          const over = await tryConnect({ ...creds });
          expect(over.refused).toEqual({
            code: "53300",
            message: `too many connections for role "${creds.user}"`,
          });
        }
        const password = (fleet.config.clusterPasswords as Record<string, string>).standard;
        const provisioner = await tryConnect({
          host: credsOf(fleet, "rw").host,
          port: credsOf(fleet, "rw").port,
          user: PROVISIONER,
          password,
          database: "tenant_acme",
        });
        expect(provisioner.refused).toBeUndefined();
        await provisioner.client?.end();
      } finally {
        await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
      }
    });

    (pgVersion >= 16 ? it : it.skip)(
      "tenants can never take the slots reserved for the provisioning role (PostgreSQL 16+)",
      async () => {
        const fleet = fleetOf();
        const su = await fleet.clusters.standard.superuserClient();
        const opened: Client[] = [];
        // A login whose limits were lifted by hand (what the budget check refuses in a manifest).
        await su.query("ALTER ROLE tenant_initech_rw CONNECTION LIMIT -1");
        await su.query("ALTER DATABASE tenant_initech CONNECTION LIMIT -1");
        try {
          const creds = fleet.outputs.credentials.initech.rw;
          let refused: { code: string; message: string } | undefined;
          for (let i = 0; i < 200 && refused === undefined; i++) {
            const r = await tryConnect({ ...creds });
            if (r.client !== undefined) opened.push(r.client);
            else refused = r.refused;
          }
          expect(refused).toEqual({
            code: "53300",
            message:
              'remaining connection slots are reserved for roles with privileges of the "pg_use_reserved_connections" role',
          });
          const password = (fleet.config.clusterPasswords as Record<string, string>).standard;
          const provisioner = await tryConnect({
            host: creds.host,
            port: creds.port,
            user: PROVISIONER,
            password,
            database: "postgres",
          });
          expect(provisioner.refused).toBeUndefined();
          await provisioner.client?.end();
        } finally {
          await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
          await su.query("ALTER ROLE tenant_initech_rw CONNECTION LIMIT 20");
          await su.query("ALTER DATABASE tenant_initech CONNECTION LIMIT 42");
          await su.end();
        }
      },
    );

    it("connections that never authenticate hold a slot for at most authentication_timeout", async () => {
      const fleet = fleetOf();
      const { host, port } = credsOf(fleet, "ro");
      // A startup packet, then silence: the server waits for the password answer.
      const startup = (user: string) => {
        const params = Buffer.from(`user\0${user}\0database\0tenant_acme\0\0`);
        const head = Buffer.alloc(8);
        head.writeInt32BE(8 + params.length, 0);
        head.writeInt32BE(196608, 4);
        return Buffer.concat([head, params]);
      };
      const sockets: net.Socket[] = [];
      const started = Date.now();
      try {
        for (let i = 0; i < 120; i++) {
          const s = net.connect(port, host);
          s.on("error", () => undefined);
          s.write(startup("tenant_acme_ro"));
          sockets.push(s);
        }
        await new Promise((r) => setTimeout(r, 500));
        let connected = false;
        while (!connected && Date.now() - started < 20_000) {
          const r = await tryConnect({ ...credsOf(fleet, "rw") });
          connected = r.client !== undefined;
          await r.client?.end();
          if (!connected) await new Promise((res) => setTimeout(res, 250));
        }
        expect(connected).toBe(true);
        // authenticationTimeoutS is 5 on the fleet: slots come back within it (and a margin).
        expect(Date.now() - started).toBeLessThan(9_000);
      } finally {
        for (const s of sockets) s.destroy();
      }
    });
  });

  describe("psql and the provider still work in a contained database", () => {
    it("psql lists and describes the app tables as acme's ro login", () => {
      const c = credsOf(fleetOf(), "ro");
      const run = spawnSync("psql", ["-X", "-At", "-c", "\\dt app.*", "-c", "\\d app.customers"], {
        env: {
          ...process.env,
          PGHOST: c.host,
          PGPORT: String(c.port),
          PGUSER: c.user,
          PGPASSWORD: c.password,
          PGDATABASE: c.database,
        },
        encoding: "utf8",
      });
      expect(run.stderr).toBe("");
      expect(run.status).toBe(0);
      expect(run.stdout).toMatch(/^app\|customers\|table\|pg_database_owner$/m);
      expect(run.stdout).toMatch(/email\|text\|\|not null\|/);
    });
  });
}
