import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { performance } from "perf_hooks";
import { stringify } from "yaml";
import type { Client } from "pg";
import { randomBytes } from "crypto";
import { quoteIdent } from "../../infra/sql";
import { RunningCluster, startCluster } from "../../tools/cluster";
import {
  Fleet,
  FleetTenant,
  freePort,
  PROVISIONER,
  provisionFleet,
  TEMPLATE,
} from "../../harness/fleet";
import { runWorker } from "../support/worker";
import { writeTenantFiles } from "../../harness/tenantFiles";

/**
 * Provisioning on a real embedded cluster, through the integration harness (the real program
 * under mocks that apply each resource with the provider's SQL), against the floor: the same
 * statements replayed with no Pulumi in between. Then CREATE DATABASE with STRATEGY WAL_LOG and
 * FILE_COPY from a small and a large template, and optionally the audit of a large fleet.
 * Argument: JSON `ProvisionJob`; prints one JSON line (`ProvisionResult`).
 */
export interface ProvisionJob {
  /** New tenants provisioned through the harness (and replayed for the floor). */
  tenants: number;
  /** Databases created per strategy and template. */
  createRepeats: number;
  /** Rows of the large template's table (about 70 bytes each on disk). */
  largeRows: number;
  /** Tenants to put on the cluster for the audit (0: no audit). */
  auditTenants: number;
  /** The audit command to run: [node args...] with cwd a folder holding the stack file. */
  auditCommand?: string[];
}

export interface ProvisionResult {
  tenants: number;
  harnessMs: number;
  statements: number;
  writes: number;
  floorMs: number;
  floorConnections: number;
  create: Array<{
    template: string;
    sizeMb: number;
    strategy: string;
    medianMs: number;
    repeats: number;
  }>;
  audit?: {
    tenants: number;
    ms: number;
    maxRssKb?: number;
    exitCode: number | null;
    output: string;
  };
}

interface Logged {
  database: string;
  sql: string;
  params: unknown[];
}

type Session = { q: (sql: string, params?: unknown[]) => Promise<unknown> };
type SessionFactory = (
  target: { host: string; port: number },
  database?: string,
) => Promise<Session>;

/**
 * Records each statement with the database it ran in, by wrapping the applier's sessions (the
 * harness records the text alone). Values stay in memory; nothing is printed.
 */
export function captureStatements(fleet: Fleet): Logged[] {
  const log: Logged[] = [];
  const applier = fleet.applier as unknown as { session: SessionFactory };
  const original = applier.session.bind(fleet.applier);
  const wrapped = new WeakSet<Session>();
  applier.session = async (target, database) => {
    const s = await original(target, database);
    if (!wrapped.has(s)) {
      wrapped.add(s);
      const q = s.q.bind(s);
      const db = database ?? "postgres";
      s.q = (sql: string, params: unknown[] = []) => {
        log.push({ database: db, sql, params });
        return q(sql, params);
      };
    }
    return s;
  };
  return log;
}

export const ids = (n: number, prefix: string) =>
  Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(5, "0")}`);

/** The same statement stream for other tenant ids: `tenant_<from>` becomes `tenant_<to>`. */
export function renamed(log: readonly Logged[], from: string, to: string): Logged[] {
  const re = new RegExp(`tenant_${from}`, "g");
  const sub = (v: unknown) => (typeof v === "string" ? v.replace(re, `tenant_${to}`) : v);
  return log.map((l) => ({
    database: sub(l.database) as string,
    sql: l.sql.replace(re, `tenant_${to}`),
    params: l.params.map(sub),
  }));
}

/**
 * Sends statements in order with no Pulumi and no pauses, on one connection per database (a
 * tenant's statements run in its own database), keeping at most `keep` open: the cluster's
 * connection slots are few.
 */
export async function replay(
  fleet: Fleet,
  log: readonly Logged[],
  keep = 16,
): Promise<{ ms: number; connections: number }> {
  const cluster = fleet.clusters.standard;
  const clients = new Map<string, Client>();
  let opened = 0;
  const started = performance.now();
  try {
    for (const l of log) {
      let c = clients.get(l.database);
      if (c === undefined) {
        if (clients.size >= keep) {
          const [oldest, client] =
            [...clients].find(([db]) => db !== "postgres") ?? [...clients][0];
          clients.delete(oldest);
          await client.end();
        }
        c = await cluster.provisionerClient(l.database);
        opened++;
        clients.set(l.database, c);
      }
      await c.query(l.sql, l.params);
    }
    return { ms: performance.now() - started, connections: opened };
  } finally {
    await Promise.all([...clients.values()].map((c) => c.end()));
  }
}

/**
 * CREATE DATABASE with each strategy, on a cluster of its own started with PostgreSQL's
 * durable defaults (the harness's test clusters run with fsync off, which would hide what
 * FILE_COPY's checkpoints cost).
 */
async function createDatabases(job: ProvisionJob): Promise<ProvisionResult["create"]> {
  const dataRoot = fs.mkdtempSync(path.join(os.tmpdir(), "pg-tenants-bench-create-"));
  fs.chmodSync(dataRoot, 0o755);
  let cluster: RunningCluster | undefined;
  const out: ProvisionResult["create"] = [];
  try {
    cluster = await startCluster({
      tier: "bench",
      port: await freePort(),
      dataDir: path.join(dataRoot, "data"),
      superuserPassword: randomBytes(18).toString("base64url"),
      provisioner: { name: PROVISIONER, password: randomBytes(18).toString("base64url") },
      template: {
        name: TEMPLATE,
        sqlFile: path.join(__dirname, "..", "..", "templates", `${TEMPLATE}.sql`),
      },
      // Durable settings (fsync on); this worker stops the cluster and removes its folder itself.
      persistent: true,
    });
    const admin = await cluster.superuserClient();
    try {
      const large = "bench_large_template";
      await admin.query(`CREATE DATABASE ${quoteIdent(large)}`);
      const filler = await cluster.superuserClient(large);
      try {
        await filler.query(
          `CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b FROM generate_series(1, ${Math.trunc(job.largeRows)}) g`,
        );
        await filler.query("CREATE INDEX ON filler (id)");
      } finally {
        await filler.end();
      }
      await admin.query(
        `ALTER DATABASE ${quoteIdent(large)} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`,
      );
      await admin.query("CHECKPOINT");
      for (const template of [TEMPLATE, large]) {
        const size = await admin.query<{ s: string }>("SELECT pg_database_size($1)::text AS s", [
          template,
        ]);
        for (const strategy of ["WAL_LOG", "FILE_COPY"]) {
          const times: number[] = [];
          for (let i = 0; i < job.createRepeats; i++) {
            const name = `bench_create_${strategy.toLowerCase()}_${i}`;
            const t0 = performance.now();
            await admin.query(
              `CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)} STRATEGY ${strategy}`,
            );
            times.push(performance.now() - t0);
            await admin.query(`DROP DATABASE ${quoteIdent(name)}`);
          }
          times.sort((a, b) => a - b);
          out.push({
            template,
            sizeMb: Number(size.rows[0].s) / 1024 / 1024,
            strategy,
            medianMs: times[Math.floor(times.length / 2)],
            repeats: times.length,
          });
        }
      }
    } finally {
      await admin.end();
    }
  } finally {
    await cluster?.stop();
    fs.rmSync(dataRoot, { recursive: true, force: true });
  }
  return out;
}

/**
 * Puts `n` tenants on the cluster by replaying the captured stream of the harness's tenants
 * under new ids (the catalog the provider would leave), writes their tenant files and a stack
 * file for the cluster, then runs the audit command over them.
 */
async function audit(
  fleet: Fleet,
  log: readonly Logged[],
  job: ProvisionJob,
  harnessIds: string[],
  present: string[],
): Promise<ProvisionResult["audit"]> {
  const per = harnessIds.length;
  const blocks = Math.max(0, Math.ceil((job.auditTenants - present.length) / per));
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "pg-tenants-bench-audit-"));
  const tenantsDir = path.join(root, "tenants");
  fs.mkdirSync(tenantsDir);
  fs.mkdirSync(path.join(root, "stacks"));
  const all: FleetTenant[] = present.map((id) => ({ id, tier: "standard" }));
  // Set-up only, not measured: the writes alone (the provider's reads change nothing), three
  // blocks at a time.
  const writes = log.filter((l) => !/^\s*SELECT\b/i.test(l.sql));
  const pending: Array<Promise<unknown>> = [];
  for (let b = 0; b < blocks; b++) {
    const blockIds = ids(per, `a${String(b).padStart(3, "0")}_`);
    let stream = [...writes];
    harnessIds.forEach((id, i) => (stream = renamed(stream, id, blockIds[i])));
    pending.push(replay(fleet, stream, 8));
    if (pending.length === 3) await Promise.all(pending.splice(0));
    blockIds.forEach((id) => all.push({ id, tier: "standard" }));
  }
  await Promise.all(pending);
  writeTenantFiles(tenantsDir, all);
  const cluster = fleet.clusters.standard;
  const stackFile = {
    config: {
      "pg-tenants:template": TEMPLATE,
      "pg-tenants:tenantsDir": tenantsDir,
      "pg-tenants:keys": { provider: "local" },
      "pg-tenants:clusters": {
        standard: {
          host: cluster.host,
          port: cluster.port,
          username: PROVISIONER,
          sslmode: "disable",
          connectionLimit: 20,
          statementTimeoutMs: 30000,
          // Thousands of tenants on one small embedded server: only a pooler in front could
          // serve them all at once; the logins' direct limits are overcommitted on purpose.
          server: { overcommit: 1000 },
        },
      },
      "pg-tenants:hba": {
        connectionType: "host",
        clientCidrs: ["127.0.0.1/32"],
        adminCidrs: ["127.0.0.1/32"],
        adminUsers: ["postgres"],
      },
    },
  };
  fs.writeFileSync(path.join(root, "stacks", "Pulumi.bench.yaml"), stringify(stackFile));
  const { spawnSync } = await import("child_process");
  const passwords = fleet.config.clusterPasswords as Record<string, string>;
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    [...(job.auditCommand ?? []), "--stack", "bench", "--format", "json"],
    {
      cwd: root,
      encoding: "utf8",
      maxBuffer: 256 * 1024 * 1024,
      env: { ...process.env, PGTENANTS_PASSWORD_STANDARD: passwords.standard },
    },
  );
  const ms = performance.now() - t0;
  const peak = /BENCH_MAX_RSS_KB=(\d+)/.exec(r.stderr ?? "");
  fs.rmSync(root, { recursive: true, force: true });
  return {
    tenants: all.length,
    ms,
    maxRssKb: peak ? Number(peak[1]) : undefined,
    exitCode: r.status,
    output: `${(r.stdout ?? "").slice(0, 400)}${(r.stderr ?? "").replace(/BENCH_MAX_RSS_KB=\d+\n?/, "").slice(0, 400)}`,
  };
}

async function run(job: ProvisionJob): Promise<ProvisionResult> {
  const fleet = await provisionFleet({ tiers: ["standard"], tenants: [] });
  try {
    const log = captureStatements(fleet);
    const harnessIds = ids(job.tenants, "p");
    const t0 = performance.now();
    await fleet.apply(harnessIds.map((id) => ({ id, tier: "standard" })));
    const harnessMs = performance.now() - t0;
    const captured = [...log];

    const floorIds = harnessIds.map((_, i) => `q${String(i).padStart(5, "0")}`);
    let floorStream = [...captured];
    harnessIds.forEach((id, i) => (floorStream = renamed(floorStream, id, floorIds[i])));
    // Room for every tenant database at once, as the provider keeps its connections for a run.
    const floor = await replay(fleet, floorStream, 64);

    // The audit runs before the template experiments, on tenants only: every database explained.
    const audited =
      job.auditTenants > 0 && job.auditCommand !== undefined
        ? await audit(fleet, captured, job, harnessIds, [...harnessIds, ...floorIds])
        : undefined;
    const create = await createDatabases(job);
    const result: ProvisionResult = {
      tenants: job.tenants,
      harnessMs,
      statements: captured.length,
      writes: captured.filter((l) => !/^\s*(SELECT|BEGIN|COMMIT)\b/i.test(l.sql)).length,
      floorMs: floor.ms,
      floorConnections: floor.connections,
      create,
    };
    if (audited !== undefined) result.audit = audited;
    return result;
  } finally {
    await fleet.stop();
  }
}

runWorker<ProvisionJob, unknown>(__filename, run);
