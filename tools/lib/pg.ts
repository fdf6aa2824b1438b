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
