import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { Client } from "pg";
import {
  CredentialsOutput,
  LocalOutputsCredentials,
  TenantConnector,
  TenantDirectory,
} from "../../client";
import type { Credentials } from "../../infra/components/credentials";
import { poolerProblems } from "../../infra/pooler";
import { startPooler, stopPooler, RunningPooler } from "../../tools/pooler";
import { Fleet, freePort, provisionFleet } from "../../harness/fleet";
import { provisionSqlFleet, SqlFleet } from "../../harness/sqlFleet";

/**
 * A real PgBouncer (Debian's) in front of real clusters, configured from what the program
 * exports (`pooler`, `poolerAuth`) and run by the same module as `npm run local`
 * (tools/pooler.ts). Through it, each tenant reaches its own database as its own logins and
 * nothing else; under a burst it never opens more server connections than rendered; a
 * flooding tenant waits behind its own limit while the others are served.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Connects with these credentials to the pooler (optionally to another database). */
async function viaPooler(
  pooler: RunningPooler,
  creds: Pick<Credentials, "user" | "password" | "database">,
  database = creds.database,
): Promise<Client> {
  const client = new Client({
    host: pooler.host,
    port: pooler.port,
    user: creds.user,
    password: creds.password,
    database,
    connectionTimeoutMillis: 10_000,
  });
  client.on("error", () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

/** The refusal of a login attempt through the pooler: `<sqlstate> <message>`. */
async function refusal(
  pooler: RunningPooler,
  creds: Pick<Credentials, "user" | "password" | "database">,
  database?: string,
): Promise<string> {
  try {
    const c = await viaPooler(pooler, creds, database);
    const who = await c.query("SELECT current_database() || ' as ' || current_user AS who");
    await c.end();
    return `admitted: ${who.rows[0].who}`;
  } catch (err) {
    const e = err as { code?: string; message: string };
    return `${e.code} ${e.message}`;
  }
}

describe("through PgBouncer, each tenant reaches its own database with its own logins and nothing else", () => {
  let fleet: Fleet;
  const poolers: Record<string, RunningPooler> = {};
  const dirs: string[] = [];

  beforeAll(async () => {
    const ports: Record<string, number> = { standard: await freePort(), premium: await freePort() };
    fleet = await provisionFleet({
      tiers: ["standard", "premium"],
      tenants: [
        { id: "acme", tier: "standard" },
        { id: "initech", tier: "standard" },
        { id: "globex", tier: "premium" },
      ],
      cluster: (tier) => ({
        // Short bounds, so that the pooler's own timeouts show within the test.
        statementTimeoutMs: 1000,
        pooler: {
          host: "127.0.0.1",
          port: ports[tier],
          listenAddr: "127.0.0.1",
          sourceCidrs: ["127.0.0.1/32"],
          queryWaitTimeoutMs: 1000,
          idleTransactionTimeoutMs: 1500,
        },
      }),
    });
    for (const tier of ["standard", "premium"]) {
      const dir = path.join(fleet.root, "pooler", tier);
      dirs.push(dir);
      poolers[tier] = await startPooler({
        tier,
        dir,
        output: fleet.outputs.pooler![tier],
        auth: fleet.outputs.poolerAuth![tier],
      });
    }
  });
  afterAll(async () => {
    for (const dir of dirs) await stopPooler(dir);
    await fleet?.stop();
  });

  const creds = (id: string, login: "rw" | "ro") => fleet.outputs.credentials[id][login];

  it("lets each login in with its generated password: the verifier the program set is the one in the auth file", async () => {
    for (const [id, tier] of [
      ["acme", "standard"],
      ["initech", "standard"],
      ["globex", "premium"],
    ]) {
      for (const login of ["rw", "ro"] as const) {
        const c = await viaPooler(poolers[tier], creds(id, login));
        const r = await c.query("SELECT current_database() AS db, current_user AS who");
        expect(r.rows[0]).toEqual({ db: `tenant_${id}`, who: `tenant_${id}_${login}` });
        await c.end();
      }
    }
    // The server saw the pooler log in as the tenant's own login, never as anyone else.
    const su = await fleet.clusters.standard.superuserClient();
    try {
      const r = await su.query(
        "SELECT DISTINCT datname, usename FROM pg_stat_activity WHERE datname LIKE 'tenant_%' ORDER BY 1, 2",
      );
      for (const row of r.rows) expect(row.usename.startsWith(`${row.datname}_`)).toBe(true);
      expect(r.rows.length).toBeGreaterThan(0);
    } finally {
      await su.end();
    }
  });

  it.each([
    [
      "acme rw to initech's database (same pooler)",
      "acme",
      "rw",
      "tenant_initech",
      "08P01 login rejected",
    ],
    [
      "acme ro to initech's database (same pooler)",
      "acme",
      "ro",
      "tenant_initech",
      "08P01 login rejected",
    ],
    // The pooler's hba is read first: no line admits acme anywhere but its own database.
    [
      "acme rw to globex's database (another cluster)",
      "acme",
      "rw",
      "tenant_globex",
      "08P01 login rejected",
    ],
    ["acme rw to postgres", "acme", "rw", "postgres", "08P01 login rejected"],
    ["acme rw to template1", "acme", "rw", "template1", "08P01 login rejected"],
    ["acme rw to the template", "acme", "rw", "customer_template_v1", "08P01 login rejected"],
    ["acme rw to the pooler's console", "acme", "rw", "pgbouncer", "08P01 not allowed"],
  ])("refuses %s", async (_what, id, login, database, expected) => {
    expect(await refusal(poolers.standard, creds(id, login as "rw" | "ro"), database)).toBe(
      expected,
    );
  });

  it("refuses another login's password, an unknown login and the operators' roles", async () => {
    const acme = creds("acme", "rw");
    const initech = creds("initech", "rw");
    const sasl = "08P01 SASL authentication failed";
    expect(await refusal(poolers.standard, { ...acme, password: initech.password })).toBe(sasl);
    expect(await refusal(poolers.standard, { ...acme, password: "wrong" })).toBe(sasl);
    expect(
      await refusal(poolers.standard, {
        ...acme,
        user: "tenant_nobody_rw",
        database: "tenant_nobody",
      }),
    ).toBe("08P01 login rejected");
    expect(await refusal(poolers.standard, { ...acme, user: "tenant_initech_rw" })).toBe(
      "08P01 login rejected",
    );
    // Neither the provisioning role nor the superuser is in the pooler's auth file or hba.
    const provisioner = fleet.config.clusterPasswords as Record<string, string>;
    expect(
      await refusal(poolers.standard, {
        user: "pgtenants_provisioner",
        password: provisioner.standard,
        database: "tenant_acme",
      }),
    ).toBe("08P01 login rejected");
    expect(
      await refusal(poolers.standard, { user: "postgres", password: "x", database: "tenant_acme" }),
    ).toBe("08P01 login rejected");
    expect(
      await refusal(poolers.standard, {
        user: "tenant_acme_owner",
        password: acme.password,
        database: "tenant_acme",
      }),
    ).toBe("08P01 login rejected");
  });

  it("keeps the server's refusals: ro cannot write, rw cannot become another role", async () => {
    const ro = await viaPooler(poolers.standard, creds("acme", "ro"));
    const rw = await viaPooler(poolers.standard, creds("acme", "rw"));
    try {
      await expect(ro.query("INSERT INTO app.events (kind) VALUES ('x')")).rejects.toMatchObject({
        code: "42501",
        message: "permission denied for table events",
      });
      for (const role of ["tenant_initech_rw", "tenant_acme_owner", "pgtenants_provisioner"]) {
        await expect(rw.query(`SET ROLE ${role}`)).rejects.toMatchObject({
          code: "42501",
          message: `permission denied to set role "${role}"`,
        });
      }
      expect((await rw.query("INSERT INTO app.events (kind) VALUES ('x')")).rowCount).toBe(1);
    } finally {
      await ro.end();
      await rw.end();
    }
  });

  it("shares a server connection only within one login: session state never reaches another tenant", async () => {
    const acme = await viaPooler(poolers.standard, creds("acme", "rw"));
    await acme.query("SET work_mem = '77MB'");
    try {
      for (const [id, login] of [
        ["initech", "rw"],
        ["acme", "ro"],
      ] as const) {
        const other = await viaPooler(poolers.standard, creds(id, login));
        expect((await other.query("SHOW work_mem")).rows[0].work_mem).toBe("4MB");
        await other.end();
      }
    } finally {
      await acme.query("RESET work_mem");
      await acme.end();
    }
  });

  it("cuts a statement whose session lifted its timeout, and a transaction left idle: bounds a tenant cannot change", async () => {
    // query_timeout: the statement timeout (1 s) + the queue wait (1 s) + 1 s.
    expect(fleet.outputs.pooler!.standard.ini).toContain("query_timeout = 3\n");
    const c = await viaPooler(poolers.standard, creds("acme", "rw"));
    await c.query("SET statement_timeout = 0");
    const started = Date.now();
    await expect(c.query("SELECT pg_sleep(6)")).rejects.toMatchObject({
      code: "08P01",
      message: "query timeout",
    });
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(2900);
    expect(elapsed).toBeLessThan(5500);
    await c.end().catch(() => undefined);

    const idle = await viaPooler(poolers.standard, creds("acme", "rw"));
    await idle.query("BEGIN");
    await sleep(2500);
    await expect(idle.query("SELECT 1")).rejects.toThrow();
    await idle.end().catch(() => undefined);
  });

  it("serves the client library through the pooler, and re-fetches a password the pooler refused once", async () => {
    let stale = true;
    const outputs = fleet.outputs.credentials as CredentialsOutput;
    const credentials = new LocalOutputsCredentials(() => {
      if (!stale) return outputs;
      stale = false;
      return {
        ...outputs,
        acme: { ...outputs.acme, rw: { ...outputs.acme.rw, password: "rotated-away" } },
      };
    });
    const connector = new TenantConnector({
      directory: new TenantDirectory({ tenants: fleet.outputs.tenants }),
      credentials,
      via: "pooler",
      maxConnections: 8,
      maxConnectionsPerTenant: 4,
    });
    try {
      // The first connection gets the stale password, is refused by the pooler, and retries once.
      expect(
        await connector.withTenant(
          "acme",
          "rw",
          async (db) => (await db.query("SELECT 1 AS one")).rows[0].one,
        ),
      ).toBe(1);
      expect(connector.metrics().authRetries).toBe(1);
      const seen = await Promise.all(
        Array.from({ length: 24 }, (_, i) => {
          const id = ["acme", "initech", "globex"][i % 3];
          const login = i % 2 === 0 ? "rw" : "ro";
          return connector.withTenant(id, login, async (db) => {
            const r = await db.query("SELECT current_database() AS db, current_user AS who");
            return `${id}/${login}: ${r.rows[0].db} as ${r.rows[0].who}`;
          });
        }),
      );
      for (const line of seen) {
        const [key, rest] = line.split(": ");
        const [id, login] = key.split("/");
        expect(rest).toBe(`tenant_${id} as tenant_${id}_${login}`);
      }
      expect(connector.metrics().authRetries).toBe(1);
    } finally {
      await connector.close();
    }
  });
});

/** Samples the tenant backends the server holds, per database and per login, until stopped. */
function sampleServer(cluster: SqlFleet["cluster"]) {
  let running = true;
  const peak = { total: 0, perDatabase: 0, perLogin: 0, samples: 0 };
  const perDb = new Map<string, number>();
  const done = (async () => {
    const su = await cluster.superuserClient();
    try {
      while (running) {
        const r = await su.query<{ datname: string; usename: string; n: number }>(
          "SELECT datname, usename, count(*)::int AS n FROM pg_stat_activity WHERE datname LIKE 'tenant_%' AND backend_type = 'client backend' GROUP BY 1, 2",
        );
        let total = 0;
        const byDb = new Map<string, number>();
        for (const row of r.rows) {
          total += row.n;
          byDb.set(row.datname, (byDb.get(row.datname) ?? 0) + row.n);
          peak.perLogin = Math.max(peak.perLogin, row.n);
        }
        for (const [db, n] of byDb) {
          peak.perDatabase = Math.max(peak.perDatabase, n);
          perDb.set(db, Math.max(perDb.get(db) ?? 0, n));
        }
        peak.total = Math.max(peak.total, total);
        peak.samples++;
        await sleep(25);
      }
    } finally {
      await su.end();
    }
  })();
  return {
    /** Samples taken so far. */
    samples: () => peak.samples,
    async stop() {
      running = false;
      await done;
      return { ...peak, perDb };
    },
  };
}

/**
 * Runs `sql` in a loop on each client for `ms`, and longer while `more()` says so (a loaded
 * machine samples slowly); returns each query's latency.
 */
async function loop(
  clients: Client[],
  sql: string,
  ms: number,
  more: () => boolean = () => false,
): Promise<number[]> {
  const started = Date.now();
  const going = () => Date.now() - started < ms || (more() && Date.now() - started < 60_000);
  const latencies: number[] = [];
  await Promise.all(
    clients.map(async (c) => {
      while (going()) {
        const t = performance.now();
        await c.query(sql);
        latencies.push(performance.now() - t);
      }
    }),
  );
  return latencies;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

describe("200 tenants x 2 logins behind one PgBouncer", () => {
  let sql: SqlFleet;
  let pooler: RunningPooler;
  const ids = Array.from({ length: 200 }, (_, i) => `t${String(i).padStart(3, "0")}`);

  beforeAll(async () => {
    sql = await provisionSqlFleet({
      ids,
      // 200 tenants x 2 server connections, and the slots the cluster keeps for its operators.
      server: { maxConnections: 420 },
      pooler: {
        port: await freePort(),
        poolSize: 1,
        maxDbConnections: 2,
        rwMaxConnections: 1,
        roMaxConnections: 1,
        maxClientConnections: 1000,
      },
    });
    pooler = await startPooler({
      tier: "standard",
      dir: path.join(sql.root, "pooler"),
      output: sql.pooler!.output,
      auth: sql.pooler!.auth,
    });
  });
  afterAll(async () => {
    if (sql !== undefined) await stopPooler(path.join(sql.root, "pooler"));
    await sql?.stop();
  });

  it("renders 400 server connections, within the cluster's 412 slots", () => {
    expect(sql.pooler!.output.serverConnections).toBe(400);
    expect(poolerProblems(sql.cfg, sql.fleet)).toEqual([]);
  });

  it("never opens more server connections than rendered under a burst of 600 client connections", async () => {
    // Every login gets a client connection, the rw logins a second one: 600 in all.
    const logins = ids.flatMap((id) => [sql.credentials[id].rw, sql.credentials[id].ro]);
    const wanted = [...logins, ...ids.map((id) => sql.credentials[id].rw)];
    const clients: Client[] = [];
    for (let i = 0; i < wanted.length; i += 50) {
      clients.push(
        ...(await Promise.all(wanted.slice(i, i + 50).map((c) => viaPooler(pooler, c)))),
      );
    }
    const sampler = sampleServer(sql.cluster);
    try {
      const latencies = await loop(
        clients,
        "SELECT pg_sleep(0.005)",
        4000,
        () => sampler.samples() < 20,
      );
      const peak = await sampler.stop();
      expect(latencies.length).toBeGreaterThan(600);
      expect(peak.samples).toBeGreaterThanOrEqual(20);
      expect(peak.total).toBeLessThanOrEqual(400);
      expect(peak.perDatabase).toBeLessThanOrEqual(2);
      expect(peak.perLogin).toBeLessThanOrEqual(1);
      // The burst reached the limits: the server held hundreds of the tenants' connections.
      expect(peak.total).toBeGreaterThanOrEqual(300);
      expect(peak.perDb.size).toBe(200);
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    }
  });

  it("queues a flooding tenant behind its own max_db_connections while the others are served", async () => {
    const flood = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        viaPooler(pooler, i % 2 === 0 ? sql.credentials.t000.rw : sql.credentials.t000.ro),
      ),
    );
    const others = await Promise.all(
      ids.slice(1, 11).map((id) => viaPooler(pooler, sql.credentials[id].ro)),
    );
    const sampler = sampleServer(sql.cluster);
    try {
      const [flooded, served] = await Promise.all([
        loop(flood, "SELECT pg_sleep(0.05)", 4000),
        (async () => {
          await sleep(500);
          return Promise.all(others.map((c) => loop([c], "SELECT 1", 3000)));
        })(),
      ]);
      const peak = await sampler.stop();
      expect(peak.perDb.get("tenant_t000")).toBeLessThanOrEqual(2);
      // 100 clients on 2 server connections: each query waits for dozens before it.
      expect(median(flooded)).toBeGreaterThan(500);
      for (const latencies of served) {
        expect(latencies.length).toBeGreaterThan(50);
        expect(median(latencies)).toBeLessThan(median(flooded) / 10);
      }
    } finally {
      await Promise.all([...flood, ...others].map((c) => c.end().catch(() => undefined)));
    }
  });
});
