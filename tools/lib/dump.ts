import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { CommandError } from "./cli";
import { ClusterTarget, DEFAULT_TIMEOUTS } from "./pg";

/**
 * pg_dump and pg_restore, found on PATH or in the folder `PGTENANTS_PG_BIN` names. pg_dump
 * refuses a server newer than itself, so the commands check first and say what to install.
 * Connection settings travel in the environment (PGHOST, PGPASSWORD, ...), never in argv, so
 * the password shows neither in `ps` nor in an error message.
 */

export const PG_BIN_ENV = "PGTENANTS_PG_BIN";

export type PgToolName = "pg_dump" | "pg_restore";

export interface PgTool {
  name: PgToolName;
  path: string;
  /** e.g. `15.18`. */
  version: string;
  major: number;
}

/** Finds a client tool and reads its version; a missing one says how to get it. */
export function findPgTool(name: PgToolName, env: NodeJS.ProcessEnv): PgTool {
  const folder = env[PG_BIN_ENV];
  const candidates =
    folder !== undefined && folder !== ""
      ? [path.join(folder, name)]
      : (env.PATH ?? "")
          .split(path.delimiter)
          .filter((d) => d !== "")
          .map((d) => path.join(d, name));
  const found = candidates.find((c) => {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return fs.statSync(c).isFile();
    } catch {
      return false;
    }
  });
  if (found === undefined) {
    const where = folder !== undefined && folder !== "" ? `in ${PG_BIN_ENV}=${folder}` : "on PATH";
    throw new CommandError(
      `${name} not found ${where}: install the PostgreSQL client tools of the clusters' version or newer (Debian: apt-get install -y postgresql-client-15; for PostgreSQL 17 servers postgresql-client-17) or set ${PG_BIN_ENV} to their bin folder`,
    );
  }
  const run = spawnSync(found, ["--version"], { encoding: "utf8" });
  const version = parseToolVersion(run.stdout ?? "");
  if (run.status !== 0 || version === undefined) {
    throw new CommandError(
      `${found} --version did not report a version: ${(run.stderr || run.stdout || "").trim()}`,
    );
  }
  return { name, path: found, version, major: Number(version.split(".")[0]) };
}

/** `15.18` from `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`. */
export function parseToolVersion(text: string): string | undefined {
  return /\(PostgreSQL\)\s+(\d+(?:\.\d+)?)/.exec(text)?.[1];
}

/**
 * pg_dump must be at least the server's major version (it refuses a newer server, and an
 * older one could not read its catalog); the same holds for pg_restore with what pg_dump wrote.
 */
export function requireToolForServer(tool: PgTool, serverMajor: number, tier: string): void {
  if (tool.major < serverMajor) {
    throw new CommandError(
      `${tool.name} ${tool.version} (${tool.path}) is older than PostgreSQL ${serverMajor} of cluster "${tier}" and refuses it: install postgresql-client-${serverMajor} (or newer) or set ${PG_BIN_ENV} to the bin folder of version ${serverMajor}+`,
    );
  }
}

/** The libpq environment of a connection as the provisioning role to `database`. */
export function libpqEnv(
  target: ClusterTarget,
  database: string,
  env: NodeJS.ProcessEnv,
): NodeJS.ProcessEnv {
  // TLS material for verify-ca/verify-full is the caller's: PGSSLROOTCERT and friends pass through.
  const tls = Object.fromEntries(
    ["PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL"]
      .filter((k) => env[k] !== undefined)
      .map((k) => [k, env[k]]),
  );
  return {
    ...tls,
    PATH: env.PATH,
    HOME: env.HOME,
    LANG: "C",
    LC_ALL: "C",
    PGHOST: target.host,
    PGPORT: String(target.port),
    PGUSER: target.user,
    PGPASSWORD: target.password,
    PGDATABASE: database,
    PGSSLMODE: target.sslmode,
    PGCONNECT_TIMEOUT: String(target.connectTimeout),
    PGAPPNAME: "pg-tenants",
    // pg_restore's session waits no longer for a tenant's lock than the commands' own sessions;
    // pg_dump sets its own statement_timeout and lock_timeout and gets --lock-wait-timeout.
    PGOPTIONS: `-c lock_timeout=${(target.timeouts ?? DEFAULT_TIMEOUTS).lockMs} -c statement_timeout=${(target.timeouts ?? DEFAULT_TIMEOUTS).statementMs}`,
  };
}

/**
 * `setpriv --pdeathsig KILL` (util-linux) where it exists: the kernel kills the tool when the
 * command dies, even by SIGKILL, so no orphaned pg_restore commits after its parent is gone.
 */
const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return process.platform === "linux";
  } catch {
    return false;
  }
});

/** The command line that runs a tool so that it dies with this process. */
export function childCommand(file: string, args: string[]): [string, string[]] {
  return SETPRIV === undefined
    ? [file, args]
    : [SETPRIV, ["--pdeathsig", "KILL", "--", file, ...args]];
}

/** Runs a client tool; a failure carries its last stderr lines (libpq never prints the password). */
export function runPgTool(
  tool: PgTool,
  args: string[],
  env: NodeJS.ProcessEnv,
  what: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const [file, argv] = childCommand(tool.path, args);
    const child = spawn(file, argv, { env, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.on("error", (e) =>
      reject(new CommandError(`${what}: ${tool.path} could not run: ${e.message}`)),
    );
    child.on("close", (code) => {
      if (code === 0) {
        resolve(Buffer.concat(out).toString("utf8"));
        return;
      }
      const stderr = Buffer.concat(err).toString("utf8").trim().split("\n").slice(-6).join("\n");
      const lockWait = /could not obtain lock|canceling statement due to lock timeout/.test(stderr);
      reject(
        new PgToolError(
          lockWait
            ? `${what} waited for a lock another session holds and gave up (${tool.name}: ${
                stderr
                  .split("\n")
                  .find((l) => /lock/.test(l))
                  ?.replace(/^[a-z_]+: (error: )?/, "") ?? "lock timeout"
              })`
            : `${what} failed (${tool.name} exit ${code}): ${stderr}`,
          lockWait,
        ),
      );
    });
  });
}

/** A client tool's failure; `lockWait` when it gave up waiting for a lock. */
export class PgToolError extends CommandError {
  constructor(
    message: string,
    public readonly lockWait: boolean,
  ) {
    super(message);
  }
}

/** Checks that a file is a custom-format archive pg_restore can read, and returns its table of contents. */
export async function listArchive(restore: PgTool, file: string): Promise<string> {
  try {
    return await runPgTool(
      restore,
      ["--list", file],
      { PATH: process.env.PATH, LANG: "C", LC_ALL: "C" },
      `reading ${file}`,
    );
  } catch (e) {
    throw new CommandError(
      `${file} is not a readable custom-format dump (corrupted or truncated?): ${(e as Error).message.split(": ").slice(1).join(": ")}`,
    );
  }
}
