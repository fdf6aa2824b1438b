import { spawn } from "child_process";
import * as path from "path";
import { Client } from "pg";
import type { CredentialsOutput, TenantSummaryView } from "../client";
import { freePort, PROVISIONER } from "../harness/fleet";
import { provisionSqlFleet, SqlFleet } from "../harness/sqlFleet";
import { startPooler, stopPooler, RunningPooler } from "../tools/pooler";
import { readLogins, sampleCluster } from "../tools/usage/sample";
import type { AppJob, AppResult } from "./workers/app";

/**
 * The pooler's figures: server connections of 200 tenants under 20 application processes
 * (the client library in each, with its own caps) straight to the cluster and through
 * PgBouncer; the latency PgBouncer adds to a query; and the cost of one `usage` sample over
 * 1,000 tenant databases. `npx ts-node bench/pooler.ts [--quick]` prints the tables.
 */

export interface PoolerBenchOptions {
  quick?: boolean;
  /** The compiled worker (bench/workers/app.js); default: run the TypeScript through ts-node. */
  appWorker?: string[];
}

const ROOT = path.join(__dirname, "..");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
const median = (xs: number[]) =>
  quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );

/** Runs one application process and returns its figures; the job goes through stdin. */
function runApp(argv: string[], job: AppJob): Promise<AppResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("close", (code) => {
      const line = out.trim().split("\n").pop() ?? "";
      if (code === 0 && line.startsWith("{")) resolve(JSON.parse(line) as AppResult);
      else
        reject(new Error(`application process failed (exit ${code}): ${err.trim().slice(-400)}`));
    });
    child.stdin.end(JSON.stringify(job));
  });
}

/** Sessions ever established in the tenant databases (since the statistics reset). */
async function tenantSessions(fleet: SqlFleet): Promise<number> {
  const su = await fleet.cluster.superuserClient();
  try {
    const r = await su.query<{ n: string }>(
      "SELECT coalesce(sum(sessions), 0)::text AS n FROM pg_stat_database WHERE datname LIKE 'tenant_%'",
    );
    return Number(r.rows[0].n);
  } finally {
    await su.end();
  }
}

/** The highest count of tenant backends the server holds, in all and in one database, sampled until stopped. */
function sampleBackends(fleet: SqlFleet) {
  let running = true;
  let peak = 0;
  let perTenant = 0;
  let samples = 0;
  const done = (async () => {
    const su = await fleet.cluster.superuserClient();
    try {
      while (running) {
        const r = await su.query<{ n: number; top: number }>(
          `SELECT coalesce(sum(n), 0)::int AS n, coalesce(max(n), 0)::int AS top FROM (
             SELECT count(*) AS n FROM pg_stat_activity
             WHERE datname LIKE 'tenant_%' AND backend_type = 'client backend' GROUP BY datname) d`,
        );
        peak = Math.max(peak, r.rows[0].n);
        perTenant = Math.max(perTenant, r.rows[0].top);
        samples++;
        await sleep(50);
      }
    } finally {
      await su.end();
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return { peak, perTenant, samples };
    },
  };
}

interface ProcessesRun {
  via: "cluster" | "pooler";
  processes: number;
  serverPeak: number;
  /** The most server connections one tenant database held. */
  tenantPeak: number;
  /** Server sessions established in the tenant databases during the run (pg_stat_database.sessions). */
  serverSessions: number;
  clientPeak: number;
  queries: number;
  errors: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
}

async function applicationProcesses(
  fleet: SqlFleet,
  pooler: RunningPooler,
  via: "cluster" | "pooler",
  opts: { processes: number; durationMs: number; argv: string[] },
): Promise<ProcessesRun> {
  const tenants: Record<string, TenantSummaryView> = {};
  for (const m of fleet.models) {
    tenants[m.id] = {
      cluster: "standard",
      host: fleet.cluster.host,
      port: fleet.cluster.port,
      database: m.names.database,
      roles: { group: m.names.group, owner: m.names.owner, rw: m.names.rw, ro: m.names.ro },
      pooler: { host: pooler.host, port: pooler.port },
    };
  }
  const credentials = fleet.credentials as CredentialsOutput;
  const sessionsBefore = await tenantSessions(fleet);
  const startAt = Date.now() + 4000;
  const sampler = sampleBackends(fleet);
  const jobs = Array.from({ length: opts.processes }, (_, i) =>
    runApp(opts.argv, {
      via,
      tenants,
      credentials,
      concurrency: 40,
      maxConnections: 40,
      maxConnectionsPerTenant: 10,
      offset: i * 40,
      startAt,
      durationMs: opts.durationMs,
      sql: "SELECT pg_sleep(0.002)",
    }),
  );
  const results = await Promise.allSettled(jobs);
  const { peak, perTenant } = await sampler.stop();
  // Sessions that ended have published their counters; the pooler's may still be open.
  await sleep(1500);
  const serverSessions = (await tenantSessions(fleet)) - sessionsBefore;
  const ok = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = results.filter((r) => r.status === "rejected");
  if (failed.length > 0) throw (failed[0] as PromiseRejectedResult).reason;
  const errors: Record<string, number> = {};
  for (const r of ok)
    for (const [k, n] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + n;
  return {
    via,
    processes: opts.processes,
    serverPeak: peak,
    tenantPeak: perTenant,
    serverSessions,
    clientPeak: ok.reduce((s, r) => s + r.maxOpen, 0),
    queries: ok.reduce((s, r) => s + r.queries, 0),
    errors,
    p50Ms: median(ok.map((r) => r.p50Ms)),
    p99Ms: Math.max(...ok.map((r) => r.p99Ms)),
  };
}

interface Overhead {
  query: string;
  directP50: number;
  directP99: number;
  pooledP50: number;
  pooledP99: number;
}

/** One connection each way, the same login and query, in alternating rounds. */
async function overhead(
  fleet: SqlFleet,
  pooler: RunningPooler,
  rounds: number,
  perRound: number,
): Promise<Overhead[]> {
  const creds = fleet.credentials[fleet.models[0].id].ro;
  const direct = new Client({ ...creds, ssl: false });
  const pooled = new Client({ ...creds, host: pooler.host, port: pooler.port, ssl: false });
  await direct.connect();
  await pooled.connect();
  const out: Overhead[] = [];
  try {
    for (const [query, values] of [
      ["SELECT 1", undefined],
      ["SELECT $1::int", [1]],
    ] as const) {
      const times = { direct: [] as number[], pooled: [] as number[] };
      for (let r = 0; r < rounds; r++) {
        const order =
          r % 2 === 0 ? (["direct", "pooled"] as const) : (["pooled", "direct"] as const);
        for (const side of order) {
          const c = side === "direct" ? direct : pooled;
          for (let i = 0; i < perRound; i++) {
            const t = performance.now();
            await c.query(query, values === undefined ? undefined : [...values]);
            times[side].push(performance.now() - t);
          }
        }
      }
      const d = times.direct.sort((a, b) => a - b);
      const p = times.pooled.sort((a, b) => a - b);
      out.push({
        query,
        directP50: quantile(d, 0.5),
        directP99: quantile(d, 0.99),
        pooledP50: quantile(p, 0.5),
        pooledP99: quantile(p, 0.99),
      });
    }
  } finally {
    await direct.end();
    await pooled.end();
  }
  return out;
}

interface UsageSampleCost {
  tenants: number;
  provisionS: number;
  sampleMs: number[];
  loginsMs: number[];
}

/** `usage`'s sample (counters and sizes of every database, as the provisioning role) over many tenants. */
async function usageSample(count: number, repeats: number): Promise<UsageSampleCost> {
  const started = Date.now();
  const ids = Array.from({ length: count }, (_, i) => `u${String(i).padStart(4, "0")}`);
  const fleet = await provisionSqlFleet({ ids, parallel: 6 });
  const provisionS = (Date.now() - started) / 1000;
  const client = new Client({
    host: fleet.cluster.host,
    port: fleet.cluster.port,
    user: PROVISIONER,
    password: fleet.provisionerPassword,
    database: "postgres",
  });
  await client.connect();
  const dbs = fleet.models.map((m) => m.database.name);
  const sampleMs: number[] = [];
  const loginsMs: number[] = [];
  try {
    for (let i = 0; i < repeats; i++) {
      let t = performance.now();
      const sample = await sampleCluster(client, "standard", dbs, { sizes: true });
      sampleMs.push(performance.now() - t);
      if (Object.keys(sample.databases).filter((d) => d.startsWith("tenant_u")).length !== count) {
        throw new Error("the sample missed tenant databases");
      }
      t = performance.now();
      await readLogins(client, dbs);
      loginsMs.push(performance.now() - t);
    }
  } finally {
    await client.end();
    await fleet.stop();
  }
  return { tenants: count, provisionS, sampleMs, loginsMs };
}

const f1 = (x: number) => x.toFixed(1);
const f3 = (x: number) => x.toFixed(3);

function errorsText(errors: Record<string, number>): string {
  const entries = Object.entries(errors).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) return "none";
  return entries.map(([k, n]) => `${n} × ${k.replace(/\|/g, "/")}`).join("; ");
}

export async function benchPooler(options: PoolerBenchOptions = {}): Promise<{ markdown: string }> {
  const quick = options.quick ?? false;
  const argv = options.appWorker ?? [
    require.resolve("ts-node/dist/bin.js"),
    path.join(ROOT, "bench", "workers", "app.ts"),
  ];
  const ids = Array.from({ length: 200 }, (_, i) => `t${String(i).padStart(3, "0")}`);
  console.error(
    "pooler: 200 tenants on one cluster, 20 application processes, with and without PgBouncer",
  );
  const fleet = await provisionSqlFleet({
    ids,
    // The budget the pooler is rendered for: 400 tenant connections and the reserved slots.
    server: { maxConnections: 420 },
    pooler: {
      port: await freePort(),
      poolSize: 1,
      maxDbConnections: 2,
      rwMaxConnections: 1,
      roMaxConnections: 1,
      maxClientConnections: 2000,
    },
  });
  const dir = path.join(fleet.root, "pooler");
  const lines: string[] = [];
  try {
    const pooler = await startPooler({
      tier: "standard",
      dir,
      output: fleet.pooler!.output,
      auth: fleet.pooler!.auth,
    });
    const durationMs = quick ? 5000 : 10000;
    const runs: ProcessesRun[] = [];
    for (const via of ["cluster", "pooler"] as const) {
      const run = await applicationProcesses(fleet, pooler, via, {
        processes: 20,
        durationMs,
        argv,
      });
      console.error(
        `  ${via}: server peak ${run.serverPeak}, ${run.queries} queries, errors ${errorsText(run.errors)}`,
      );
      runs.push(run);
      await sleep(1000);
    }
    const lat = await overhead(fleet, pooler, quick ? 4 : 10, quick ? 200 : 500);
    lines.push(
      "### Pooler: server connections of 200 tenants under 20 application processes",
      "",
      `200 tenants × 2 logins on one embedded PostgreSQL 17 cluster (max_connections 420: 412 slots for tenant logins), 20 application processes, each a TenantConnector (maxConnections 40, maxConnectionsPerTenant 10) running 40 request loops of \`SELECT pg_sleep(0.002)\` over every tenant and login for ${durationMs / 1000} s. Through PgBouncer (Debian's, transaction pooling, rendered from the model: pool_size 1, max_user_connections 1 per login, max_db_connections 2 per tenant, i.e. at most ${fleet.pooler!.output.serverConnections} server connections). Server connections: the peak count of tenant backends in pg_stat_activity, sampled every 50 ms.`,
      "",
      "| path | client connections (peak, all processes) | server connections (peak) | of one tenant (peak) | server sessions opened | requests done | per-request p50 / worst p99 (ms) | errors |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
      ...runs.map(
        (r) =>
          `| ${r.via === "cluster" ? "straight to the cluster" : "through PgBouncer"} | ${r.clientPeak} | ${r.serverPeak} | ${r.tenantPeak} | ${r.serverSessions} | ${r.queries} | ${f1(r.p50Ms)} / ${f1(r.p99Ms)} | ${errorsText(r.errors)} |`,
      ),
      "",
      "Straight to the cluster, every process holds its own connections per tenant and login: they add up over the processes (up to 20 × 40 = 800 wanted here, beyond the 412 slots, so the server refuses some), and as 40 slots cannot hold 400 logins each process keeps closing one connection to open another, each a new server session (a backend start and a SCRAM exchange). Through PgBouncer the processes open as many client connections, but the server holds at most the rendered 400 (2 per tenant), opens each of those sessions once, and requests queue at the pooler behind their own tenant's limit (the per-request times include that wait).",
      "",
      "#### Latency the pooler adds to a query",
      "",
      `One connection each way, the same tenant login, ${quick ? 4 : 10} alternating rounds of ${quick ? 200 : 500} queries:`,
      "",
      "| query | direct p50 / p99 (ms) | through PgBouncer p50 / p99 (ms) | added at p50 (ms) |",
      "| --- | ---: | ---: | ---: |",
      ...lat.map(
        (o) =>
          `| \`${o.query}\` | ${f3(o.directP50)} / ${f3(o.directP99)} | ${f3(o.pooledP50)} / ${f3(o.pooledP99)} | ${f3(o.pooledP50 - o.directP50)} |`,
      ),
      "",
    );
  } finally {
    await stopPooler(dir);
    await fleet.stop();
  }

  const count = quick ? 200 : 1000;
  console.error(`pooler: usage's sample over ${count} tenant databases`);
  const cost = await usageSample(count, 5);
  lines.push(
    `#### One \`usage\` sample over ${cost.tenants} tenants`,
    "",
    `pg_stat_database joined with pg_database_size of every database, as the provisioning role, on one cluster of ${cost.tenants} tenant databases cloned from the template (provisioned with SQL in ${f1(cost.provisionS)} s); 5 samples. Goal: under 5 s.`,
    "",
    "| read | median (ms) | max (ms) |",
    "| --- | ---: | ---: |",
    `| counters and sizes (one sample) | ${f1(median(cost.sampleMs))} | ${f1(Math.max(...cost.sampleMs))} |`,
    `| sessions per database and login (polled every second) | ${f1(median(cost.loginsMs))} | ${f1(Math.max(...cost.loginsMs))} |`,
    "",
  );
  return { markdown: lines.join("\n") };
}

if (require.main === module) {
  benchPooler({ quick: process.argv.includes("--quick") }).then(
    (r) => console.log(r.markdown),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
