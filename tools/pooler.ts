import { spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { relocatePgbouncerIni, type PoolerOutput } from "../infra/pooler";

/**
 * One PgBouncer per cluster on this machine (Debian's `pgbouncer` package), run from the
 * configuration the stack deployed (its `pooler` and `poolerAuth` outputs): `npm run local`
 * starts or reloads it after `pulumi up`, `npm run local:stop` stops it, and the tests run the
 * same lifecycle. Its files live in a folder of its own (`.local/pooler/<tier>/`), mode 0600:
 * the auth file holds the logins' SCRAM verifiers. PgBouncer refuses to run as root: under root
 * it runs as the OS user postgres, like the clusters.
 */

/** Debian's binary; PGTENANTS_PGBOUNCER names another. */
export function pgbouncerBinary(env: NodeJS.ProcessEnv = process.env): string {
  return env.PGTENANTS_PGBOUNCER ?? "/usr/sbin/pgbouncer";
}

/** What a pooler needs to run: the deployed configuration of its cluster and the auth file. */
export interface PoolerRun {
  tier: string;
  /** Its own folder: config, hba, auth file, log and pid file. */
  dir: string;
  output: PoolerOutput;
  /** The auth file (secret). */
  auth: string;
  /** Listen on this port instead of the deployed one (tests). */
  port?: number;
}

export interface RunningPooler {
  tier: string;
  host: string;
  port: number;
  pid: number;
  /** True when an already running pooler re-read its files instead. */
  reloaded: boolean;
  dir: string;
}

interface OsUser {
  uid: number;
  gid: number;
}

/** Under root, the OS user postgres (the clusters' own, tools/cluster.ts creates it). */
function poolerUser(): OsUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
  const gid = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" });
  if (uid.status !== 0 || gid.status !== 0) {
    throw new Error(
      "PgBouncer refuses to run as root and the OS user postgres does not exist (start the clusters first: npm run local)",
    );
  }
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

const FILES = {
  ini: "pgbouncer.ini",
  hba: "pgbouncer_hba.conf",
  auth: "userlist.txt",
  log: "pgbouncer.log",
  pid: "pgbouncer.pid",
} as const;

/** Writes a file readable by the pooler's user only, replacing any looser one. */
function writePrivate(file: string, text: string, user: OsUser | undefined): void {
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, text, { mode: 0o600 });
  if (user !== undefined) fs.chownSync(temporary, user.uid, user.gid);
  fs.renameSync(temporary, file);
}

/** The pid of the pooler running from this folder, if any. */
export function runningPoolerPid(dir: string): number | undefined {
  const file = path.join(dir, FILES.pid);
  if (!fs.existsSync(file)) return undefined;
  const pid = Number(fs.readFileSync(file, "utf8").trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  // A pid file outliving its process may name an unrelated one by now.
  const cmdline = path.join("/proc", String(pid), "cmdline");
  if (fs.existsSync(cmdline) && !fs.readFileSync(cmdline, "utf8").includes("pgbouncer")) {
    return undefined;
  }
  return pid;
}

function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host, () => {
      socket.end();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function logTail(dir: string): string {
  const file = path.join(dir, FILES.log);
  if (!fs.existsSync(file)) return "";
  return fs.readFileSync(file, "utf8").trim().split("\n").slice(-8).join("\n");
}

/** The host the pooler listens on, as a client on this machine reaches it. */
function listenHost(output: PoolerOutput): string {
  const addr = /^listen_addr = (.*)$/m.exec(output.ini)?.[1]?.split(",")[0]?.trim() ?? "*";
  return addr === "*" || addr === "0.0.0.0" ? "127.0.0.1" : addr;
}

/**
 * Starts the pooler of a cluster, or makes the running one re-read its files (SIGHUP: new
 * tenants, limits and passwords take effect, open client connections stay). Resolves once it
 * accepts connections; a pooler that does not come up fails with its log.
 */
export async function startPooler(run: PoolerRun): Promise<RunningPooler> {
  const bin = pgbouncerBinary();
  if (!fs.existsSync(bin)) {
    throw new Error(
      `PgBouncer is not installed (no ${bin}): apt-get install pgbouncer, or set PGTENANTS_PGBOUNCER`,
    );
  }
  const user = poolerUser();
  // The folders above stay traversable for the pooler's user; its own folder is private.
  fs.mkdirSync(path.dirname(run.dir), { recursive: true, mode: 0o755 });
  fs.mkdirSync(run.dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(run.dir, 0o700);
  if (user !== undefined) fs.chownSync(run.dir, user.uid, user.gid);
  const file = (name: keyof typeof FILES) => path.join(run.dir, FILES[name]);
  const ini = relocatePgbouncerIni(
    run.output.ini,
    {
      authFile: file("auth"),
      hbaFile: file("hba"),
      logFile: file("log"),
      pidFile: file("pid"),
    },
    run.port,
  );
  const port = run.port ?? Number(/^listen_port = (\d+)$/m.exec(ini)?.[1]);
  const host = listenHost(run.output);
  writePrivate(file("hba"), run.output.hba, user);
  writePrivate(file("auth"), run.auth, user);
  writePrivate(file("ini"), ini, user);
  if (!fs.existsSync(file("log"))) writePrivate(file("log"), "", user);

  const pid = runningPoolerPid(run.dir);
  if (pid !== undefined) {
    process.kill(pid, "SIGHUP");
    // PgBouncer re-reads its files in its event loop: wait for it to log the reload.
    const before = fs.readFileSync(file("log"), "utf8").length;
    for (let i = 0; i < 100; i++) {
      const log = fs.readFileSync(file("log"), "utf8");
      if (log.slice(before).includes("SIGHUP")) break;
      await sleep(20);
    }
    return { tier: run.tier, host, port, pid, reloaded: true, dir: run.dir };
  }

  if (await listening(host, port)) {
    throw new Error(
      `cannot start the pooler of cluster "${run.tier}": ${host}:${port} is already in use by another program`,
    );
  }
  // -d: PgBouncer detaches and outlives this process, like the clusters (pg_ctl).
  const started = spawnSync(bin, ["-d", file("ini")], { encoding: "utf8", ...(user ?? {}) });
  if (started.error !== undefined || started.status !== 0) {
    throw new Error(
      `PgBouncer for cluster "${run.tier}" did not start (${started.error?.message ?? `exit ${started.status}`}): ${`${started.stderr}\n${logTail(run.dir)}`.trim()}`,
    );
  }
  for (let i = 0; i < 250; i++) {
    const up = runningPoolerPid(run.dir);
    if (up !== undefined && (await listening(host, port))) {
      return { tier: run.tier, host, port, pid: up, reloaded: false, dir: run.dir };
    }
    await sleep(20);
  }
  throw new Error(
    `PgBouncer for cluster "${run.tier}" does not accept connections on ${host}:${port} after 5 s; its log (${file("log")}):\n${logTail(run.dir)}`,
  );
}

/** Stops the pooler running from this folder; false when none ran. Files stay. */
export async function stopPooler(dir: string): Promise<boolean> {
  const pid = runningPoolerPid(dir);
  if (pid === undefined) return false;
  // SIGTERM: PgBouncer closes every connection at once (SIGINT would wait for clients).
  process.kill(pid, "SIGTERM");
  for (let i = 0; i < 250; i++) {
    if (runningPoolerPid(dir) === undefined) return true;
    await sleep(20);
  }
  process.kill(pid, "SIGKILL");
  return true;
}

/** The folder of a tier's pooler under the local stack's folder. */
export function localPoolerDir(localDir: string, tier: string): string {
  return path.join(localDir, "pooler", tier);
}

/** What a deployed stack says about its poolers: per tier the output and the auth file. */
export interface DeployedPoolers {
  pooler: Record<string, PoolerOutput>;
  auth: Record<string, string>;
}

/** The `pooler`/`poolerAuth` outputs of a deployed stack (as the Automation API returns them). */
export function deployedPoolers(
  outputs: Record<string, { value?: unknown }>,
): DeployedPoolers | undefined {
  const pooler = outputs.pooler?.value as Record<string, PoolerOutput> | undefined;
  const auth = outputs.poolerAuth?.value as Record<string, string> | undefined;
  if (pooler === undefined || typeof pooler !== "object") return undefined;
  return { pooler, auth: auth ?? {} };
}

/**
 * Starts (or reloads) the pooler of every cluster the deployed stack has one for, and stops
 * those of clusters that no longer have one. Returns one line per pooler for the user.
 */
export async function syncLocalPoolers(
  localDir: string,
  tiers: readonly string[],
  deployed: DeployedPoolers | undefined,
): Promise<string[]> {
  const lines: string[] = [];
  for (const tier of tiers) {
    const dir = localPoolerDir(localDir, tier);
    const output = deployed?.pooler[tier];
    if (output === undefined) {
      if (await stopPooler(dir)) lines.push(`pooler ${tier} stopped (the stack declares none)`);
      continue;
    }
    const p = await startPooler({ tier, dir, output, auth: deployed?.auth[tier] ?? "" });
    const shown = path.relative(process.cwd(), dir);
    lines.push(
      `pooler ${tier} ${p.reloaded ? "reloaded" : "ready"} on ${p.host}:${p.port} (at most ${output.serverConnections} server connections; files in ${shown.startsWith("..") ? dir : shown})`,
    );
  }
  return lines;
}

/** Stops every local pooler; one line per pooler that ran. */
export async function stopLocalPoolers(
  localDir: string,
  tiers: readonly string[],
): Promise<string[]> {
  const lines: string[] = [];
  for (const tier of tiers) {
    if (await stopPooler(localPoolerDir(localDir, tier))) lines.push(`pooler ${tier} stopped`);
  }
  return lines;
}
