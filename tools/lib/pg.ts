import * as fs from "fs";
import * as path from "path";
import { Client, ClientConfig } from "pg";
import type { ClusterConfig, StackConfig } from "../../infra/config";
import { clusterPassword } from "../stack";
import { CommandError } from "./cli";

/**
 * Connections of the day-two commands: always as a cluster's provisioning role, with the
 * stack's host, port and sslmode, and errors that say which cluster failed and what to do.
 * The password comes from `PGTENANTS_PASSWORD_<TIER>` or, for the local stack, the state file
 * `npm run local` writes; it is never printed.
 */

/** Everything needed to reach one cluster as its provisioning role. */
export interface ClusterTarget {
  tier: string;
  host: string;
  port: number;
  user: string;
  password: string;
  sslmode: ClusterConfig["sslmode"];
  connectTimeout: number;
  /** The maintenance database the provisioning role may connect to. */
  database: string;
  /** lock_timeout and statement_timeout of every session of the day-two commands (default DEFAULT_TIMEOUTS). */
  timeouts?: DayTwoTimeouts;
}

/**
 * Every session of a day-two command waits at most `lockMs` for a lock a tenant holds and runs
 * no statement longer than `statementMs` (a COPY of one table is one statement). The role's own
 * lock_timeout (10 s, set at bootstrap) is not enough: pg_dump resets it, so the dump tools get
 * --lock-wait-timeout. `PGTENANTS_LOCK_TIMEOUT_MS` and `PGTENANTS_STATEMENT_TIMEOUT_MS` change them.
 */
export interface DayTwoTimeouts {
  lockMs: number;
  statementMs: number;
}

export const DEFAULT_TIMEOUTS: DayTwoTimeouts = { lockMs: 10_000, statementMs: 3_600_000 };

/** The timeouts from the environment; a bad value is a usage error naming the variable. */
export function dayTwoTimeouts(env: NodeJS.ProcessEnv): DayTwoTimeouts {
  const read = (name: string, fallback: number) => {
    const v = env[name];
    if (v === undefined || v === "") return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 2147483647)
      throw new CommandError(`${name} must be a whole number of milliseconds from 1 to 2147483647`);
    return n;
  };
  return {
    lockMs: read("PGTENANTS_LOCK_TIMEOUT_MS", DEFAULT_TIMEOUTS.lockMs),
    statementMs: read("PGTENANTS_STATEMENT_TIMEOUT_MS", DEFAULT_TIMEOUTS.statementMs),
  };
}

/**
 * The local clusters' state, as `npm run local` writes it (`.local/state.json`, or under
 * PGTENANTS_LOCAL_DIR): each tier's port and provisioning password.
 */
export function localClusterState(
  root: string,
  env: NodeJS.ProcessEnv,
  tier: string,
): { port?: number; provisionerPassword?: string } | undefined {
  const dir = env.PGTENANTS_LOCAL_DIR;
  const file = path.join(
    path.resolve(root, dir === undefined || dir === "" ? ".local" : dir),
    "state.json",
  );
  if (!fs.existsSync(file)) return undefined;
  const state = JSON.parse(fs.readFileSync(file, "utf8")) as {
    clusters?: Record<string, { port?: number; provisionerPassword?: string }>;
  };
  return state.clusters?.[tier];
}

/** The provisioning connection of a tier of the stack. */
export function clusterTarget(
  cfg: StackConfig,
  tier: string,
  root: string,
  env: NodeJS.ProcessEnv,
): ClusterTarget {
  const cluster = cfg.clusters[tier];
  if (cluster === undefined) {
    throw new CommandError(
      `stack ${cfg.stack} has no cluster "${tier}" (tiers: ${Object.keys(cfg.clusters).join(", ")})`,
    );
  }
  const envName = `PGTENANTS_PASSWORD_${tier.toUpperCase()}`;
  const local = cfg.stack === "local" ? localClusterState(root, env, tier) : undefined;
  const password = withEnv(
    env,
    () => clusterPassword(tier, () => local?.provisionerPassword),
    envName,
  );
  return {
    tier,
    host: cluster.host,
    // The local clusters may run on other ports than the stack file's (PGTENANTS_LOCAL_PORT_BASE).
    port: local?.port ?? cluster.port,
    user: cluster.username,
    password,
    sslmode: cluster.sslmode,
    connectTimeout: cluster.connectTimeout,
    database: cluster.database,
    timeouts: dayTwoTimeouts(env),
  };
}

/** clusterPassword reads process.env; a command run with another environment (tests) lends it. */
function withEnv<T>(env: NodeJS.ProcessEnv, fn: () => T, name: string): T {
  if (env === process.env) return fn();
  const saved = process.env[name];
  if (env[name] === undefined) delete process.env[name];
  else process.env[name] = env[name];
  try {
    return fn();
  } finally {
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  }
}

function sslOption(mode: ClusterTarget["sslmode"]): ClientConfig["ssl"] {
  switch (mode) {
    case "disable":
      return false;
    case "require":
      return { rejectUnauthorized: false };
    case "verify-ca":
      return { rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case "verify-full":
      return { rejectUnauthorized: true };
  }
}

/** Opens a connection to one database of a cluster; failures become one clear sentence. */
export async function connect(target: ClusterTarget, database = target.database): Promise<Client> {
  const client = new Client({
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password,
    database,
    ssl: sslOption(target.sslmode),
    connectionTimeoutMillis: target.connectTimeout * 1000,
    application_name: "pg-tenants",
    lock_timeout: (target.timeouts ?? DEFAULT_TIMEOUTS).lockMs,
    statement_timeout: (target.timeouts ?? DEFAULT_TIMEOUTS).statementMs,
  });
  // A connection that dies later must not crash the process with an unhandled 'error' event.
  client.on("error", () => undefined);
  try {
    await client.connect();
  } catch (e) {
    await client.end().catch(() => undefined);
    throw new CommandError(connectionMessage(target, database, e));
  }
  return client;
}

/** Runs `fn` with a connection and always closes it. */
export async function withClient<T>(
  target: ClusterTarget,
  database: string,
  fn: (client: Client) => Promise<T>,
): Promise<T> {
  const client = await connect(target, database);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** What went wrong connecting, by cluster, with what to check; never the password. */
export function connectionMessage(target: ClusterTarget, database: string, e: unknown): string {
  const err = e as { code?: string; message?: string };
  const where = `cluster "${target.tier}" at ${target.host}:${target.port}`;
  switch (err.code) {
    case "ECONNREFUSED":
      return `cannot reach ${where}: connection refused (is the cluster running? for the local stack: npm run local)`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `cannot reach ${where}: host not found`;
    case "ETIMEDOUT":
      return `cannot reach ${where}: timed out after ${target.connectTimeout}s`;
    case "28P01":
      return `password authentication failed for ${target.user} on ${where}: check PGTENANTS_PASSWORD_${target.tier.toUpperCase()} (the stack secret pg-tenants:clusterPasswords.${target.tier})`;
    case "28000":
      return `${where} refused ${target.user} for database ${database}: ${err.message} (check its pg_hba.conf: npm run hba)`;
    case "3D000":
      return `database ${database} does not exist on ${where}`;
    case "55000":
    case "57P03":
      return `${where} does not accept connections to ${database}: ${err.message}`;
    default:
      if ((err.message ?? "").includes("timeout")) {
        return `cannot reach ${where}: timed out after ${target.connectTimeout}s`;
      }
      return `cannot connect to database ${database} on ${where}: ${err.message ?? String(e)}`;
  }
}

/** True for the errors a lock or statement timeout ends a wait with. */
export function isTimeout(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code === "55P03" || code === "57014";
}

/**
 * One sentence for an error of `what`: a lock or statement timeout says so and what to do; any
 * other error keeps its message.
 */
export function lockWaitMessage(e: unknown, what: string): string {
  const err = e as { code?: string; message?: string };
  if (err.code === "55P03")
    return `${what} waited for a lock another session holds and gave up (lock_timeout): find it with npm run audit or pg_locks, end it (pg-tenants watchdog, or SELECT pg_terminate_backend(<pid>)) or wait for it, and run again`;
  if (err.code === "57014")
    return `${what} was cancelled by its statement timeout: run again when the cluster is less busy, or raise PGTENANTS_STATEMENT_TIMEOUT_MS`;
  return err.message ?? String(e);
}

export interface LockHolder {
  pid: number;
  role: string;
  mode: string;
  relation: string | null;
  state: string | null;
  /** Seconds since its transaction started. */
  seconds: number;
}

/**
 * Sessions other than ours holding locks in `database` that block reads (anything from
 * ShareRowExclusive up, on a relation): who a dump or copy waited for.
 */
export async function lockHolders(admin: Client, database: string): Promise<LockHolder[]> {
  const r = await admin.query<LockHolder>(
    `SELECT a.pid, a.usename::text AS role, l.mode,
            (SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = l.relation AND l.database = d.oid) AS relation,
            a.state, coalesce(extract(epoch FROM now() - a.xact_start), 0)::int AS seconds
     FROM pg_locks l JOIN pg_database d ON d.oid = l.database JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE d.datname = $1 AND l.granted AND l.locktype = 'relation' AND a.pid <> pg_backend_pid()
       AND l.mode IN ('AccessExclusiveLock', 'ExclusiveLock', 'ShareRowExclusiveLock')
       AND a.application_name <> 'pg-tenants'
     ORDER BY a.pid, l.mode`,
    [database],
  );
  return r.rows;
}

/** What a wait ended on: the blocking sessions with their tenant, and what to do. */
export function describeHolders(
  holders: readonly LockHolder[],
  tenantOf: (role: string) => string | undefined,
): string {
  if (holders.length === 0) return "no session holds a blocking lock any more: run again";
  const seen = new Set<number>();
  const parts: string[] = [];
  for (const h of holders) {
    if (seen.has(h.pid)) continue;
    seen.add(h.pid);
    const tenant = tenantOf(h.role);
    parts.push(
      `session ${h.pid} of ${h.role}${tenant !== undefined ? ` (tenant ${tenant})` : ""} holds ${h.mode}${h.relation !== null ? ` on ${h.relation}` : ""} (${h.state ?? "unknown state"}, transaction open ${h.seconds} s)`,
    );
  }
  const pids = [...seen];
  return `${parts.join("; ")}: end it with SELECT pg_terminate_backend(${pids.join("), pg_terminate_backend(")}) as the provisioning role (or ask the tenant to commit), then run again`;
}

/** The server's major version (15, 17, ...) from `server_version_num`. */
export async function serverMajor(client: Client): Promise<number> {
  const r = await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
  return Math.floor(Number(r.rows[0].v) / 10000);
}

/** Runs `fn` on every item with at most `size` running at once; results keep the input order. */
export async function mapPool<T, R>(
  items: readonly T[],
  size: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(size, items.length)) }, worker));
  return results;
}
