import { createHash } from "crypto";
import * as fs from "fs";
import type { Client } from "pg";
import { CONTAINMENT_SCHEMA } from "../../infra/containment";
import { CommandError } from "./cli";
import { LargeObjectStats, sequenceValues, largeObjectStats, SequenceValue } from "./contents";
import { findPgTool, libpqEnv, PgToolError, requireToolForServer, runPgTool } from "./dump";
import {
  ClusterTarget,
  DEFAULT_TIMEOUTS,
  describeHolders,
  isTimeout,
  lockHolders,
  serverMajor,
} from "./pg";
import { tableStats, TableStats } from "./tables";

/**
 * A tenant dump and its manifest: `<file>` is a pg_dump custom-format archive (or, for a final
 * dump, the sealed form of one), `<file>.json` records what it holds so that a restore can
 * verify every table arrived.
 */

export interface DumpManifest {
  format: "pg-tenants-dump/1";
  tenant: string;
  stack: string;
  tier: string;
  database: string;
  createdAt: string;
  serverVersion: string;
  pgDump: string;
  /** sha256 of the dump file as written (sealed or not). */
  sha256: string;
  bytes: number;
  /** Set when the file is sealed (see seal.ts). */
  sealed?: { keySource: string };
  tables: TableStats[];
  /** Every sequence's value (manifests before they were recorded have none). */
  sequences?: SequenceValue[];
  /** The large objects: count, owners, checksum (absent in older manifests). */
  largeObjects?: LargeObjectStats;
}

export const manifestPath = (file: string) => `${file}.json`;

export function sha256File(file: string): string {
  const hash = createHash("sha256");
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.alloc(1 << 20);
    let n: number;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) hash.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest("hex");
}

/** Reads `<file>.json`; undefined when there is none. */
export function readManifest(file: string): DumpManifest | undefined {
  const p = manifestPath(file);
  if (!fs.existsSync(p)) return undefined;
  let parsed: DumpManifest;
  try {
    parsed = JSON.parse(fs.readFileSync(p, "utf8")) as DumpManifest;
  } catch (e) {
    throw new CommandError(`${p} is not valid JSON: ${(e as Error).message}`);
  }
  if (parsed.format !== "pg-tenants-dump/1")
    throw new CommandError(`${p} is not a pg-tenants dump manifest`);
  return parsed;
}

/**
 * The database a custom-format archive was dumped from: the `;     dbname: <name>` line of the
 * table of contents `pg_restore --list` prints; undefined when there is none.
 */
export function archiveDatabaseName(toc: string): string | undefined {
  return /^;\s+dbname: (.*)$/m.exec(toc)?.[1];
}

export interface DumpResult {
  tables: TableStats[];
  sequences: SequenceValue[];
  largeObjects: LargeObjectStats;
  serverVersion: string;
  pgDump: string;
}

/**
 * Dumps one database to `file` (custom format) and records per-table counts and checksums from
 * the very snapshot pg_dump reads (`--snapshot`), so the manifest describes exactly the dump.
 * `client` must be connected to that database; it is left connected.
 */
export async function dumpWithStats(
  client: Client,
  target: ClusterTarget,
  database: string,
  file: string,
  env: NodeJS.ProcessEnv,
  extraArgs: string[] = [],
  tenantOf: (role: string) => string | undefined = () => undefined,
): Promise<DumpResult> {
  const major = await serverMajor(client);
  const pgDump = findPgTool("pg_dump", env);
  requireToolForServer(pgDump, major, target.tier);
  await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  try {
    const snapshot = (await client.query<{ s: string }>("SELECT pg_export_snapshot() AS s")).rows[0]
      .s;
    const version = (
      await client.query<{ v: string }>("SELECT current_setting('server_version') AS v")
    ).rows[0].v;
    const what = `dumping database ${database} of cluster "${target.tier}"`;
    const blocked = async (message: string): Promise<never> => {
      await client.query("ROLLBACK").catch(() => undefined);
      const holders = await lockHolders(client, database).catch(() => []);
      throw new CommandError(`${message}: ${describeHolders(holders, tenantOf)}`);
    };
    let tables: TableStats[], sequences: SequenceValue[], largeObjects: LargeObjectStats;
    try {
      tables = await tableStats(client);
      sequences = await sequenceValues(client);
      largeObjects = await largeObjectStats(client);
    } catch (e) {
      if (!isTimeout(e)) throw e;
      return await blocked(
        `${what} waited for a lock another session holds and gave up (lock_timeout)`,
      );
    }
    await runPgTool(
      pgDump,
      [
        "--format=custom",
        `--snapshot=${snapshot}`,
        `--file=${file}`,
        // pg_dump sets lock_timeout 0 for itself: without this a tenant's lock stalls it for ever.
        `--lock-wait-timeout=${(target.timeouts ?? DEFAULT_TIMEOUTS).lockMs}`,
        // The containment's own schema comes from the template on every restore target.
        `--exclude-schema=${CONTAINMENT_SCHEMA}`,
        ...extraArgs,
      ],
      libpqEnv(target, database, env),
      what,
    ).catch(async (e: unknown) => {
      if (!(e instanceof PgToolError) || !e.lockWait) throw e;
      return blocked(e.message);
    });
    return { tables, sequences, largeObjects, serverVersion: version, pgDump: pgDump.version };
  } finally {
    await client.query("COMMIT").catch(() => undefined);
  }
}
