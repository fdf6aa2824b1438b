import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Client } from "pg";
import { parseDocument } from "yaml";
import type { TenantModel } from "../infra/model";
import { PROJECT } from "../infra/config";
import { quoteIdent } from "../infra/sql";
import {
  CommandError,
  CommandIo,
  EXIT,
  findTenant,
  loadContext,
  readCommandArgs,
  processIo,
  runCommand,
  UsageError,
} from "./lib/cli";
import { findPgTool, libpqEnv, requireToolForServer, runPgTool } from "./lib/dump";
import { freeze, thaw } from "./lib/freeze";
import { ClusterTarget, clusterTarget, connect, serverMajor } from "./lib/pg";
import { compareStats, tableStats, TableStats } from "./lib/tables";
import { HISTORY_SCHEMA } from "../infra/templates";
import { requireSameVersion } from "./lib/migrations/move";

/**
 * `npm run move -- <tenant> [--stack <name>] [--wait <seconds>]`: carries out the tier move a
 * tenant file declares (`move: { to: <tier> }`), after `pulumi up` has provisioned the target
 * placement `<id>@<to>` (an empty database with the tenant's roles and grants):
 *
 *  1. checks: target database exists, is empty, has the source's tables and columns;
 *  2. freezes the source: login roles NOLOGIN, their sessions ended;
 *  3. copies the data: pg_dump --data-only (custom format) | pg_restore --single-transaction;
 *  4. verifies every table's row count and content checksum on both sides;
 *  5. closes the source database (ALLOW_CONNECTIONS false; kept, never dropped) and rewrites
 *     the tenant file to `tier: <to>` without `move`.
 *
 * One move per tenant at a time: a session advisory lock on the source cluster for the whole run.
 * A failure in 2-4 empties the target again if the load had committed, gives the source its
 * logins back, and says which of these succeeded; a failure in 5 says the state and what is left.
 */

interface Side {
  target: ClusterTarget;
  admin: Client;
  db: Client;
}

export async function main(argv: string[], io: CommandIo = processIo()): Promise<number> {
  return runCommand(io, async () => {
    const args = readCommandArgs(argv, "move");
    const [id] = args.positionals;
    const waitSeconds = Number(args.value("wait"));
    if (!Number.isFinite(waitSeconds) || waitSeconds < 0)
      throw new UsageError(`--wait must be a number of seconds\nusage: ${args.usage}`);
    const ctx = loadContext(args.value("stack"), io.root);
    const { tenant, model } = findTenant(ctx, id);
    if (model.move === undefined) {
      throw new CommandError(
        `tenant ${id} declares no move: add "move: { to: <tier> }" to ${tenant.file}, run pulumi up (it provisions the target database), then npm run move -- ${id}`,
      );
    }
    const to = model.move.to;
    const targetModel = model.move.target;

    const pgDump = findPgTool("pg_dump", io.env);
    const pgRestore = findPgTool("pg_restore", io.env);
    const source = await open(clusterTarget(ctx.cfg, model.tier, ctx.root, io.env), model);
    let dest: Side | undefined;
    try {
      dest = await open(
        clusterTarget(ctx.cfg, to, ctx.root, io.env),
        targetModel,
        `run pulumi up first: while ${tenant.file} declares the move, the program provisions it`,
      );
      await lockMove(source, model);
      requireToolForServer(pgDump, await serverMajor(source.db), model.tier);
      requireToolForServer(pgRestore, await serverMajor(dest.db), to);
      await checkTarget(source.db, dest.db, targetModel, to);
      await requireSameVersion(source.db, dest.db, id, ctx.cfg.stack);

      io.out(
        `moving tenant ${id}: database ${model.database.name} from cluster ${model.tier} to cluster ${to}`,
      );
      io.progress?.(`move: waiting up to ${waitSeconds} s for tenant ${id}'s sessions to end`);
      const frozen = await freeze(source.admin, model, waitSeconds);
      io.out(
        `froze the source: ${frozen.logins.join(", ") || "no login"} set NOLOGIN, no session left`,
      );
      const progress = { loaded: false };
      let expected: TableStats[];
      try {
        io.progress?.(`move: copying ${model.database.name} to cluster ${to} and verifying it`);
        expected = await copy(
          source,
          dest,
          model,
          targetModel,
          pgDump,
          pgRestore,
          io.env,
          progress,
        );
      } catch (e) {
        let emptied: Outcome = "skipped";
        if (progress.loaded) {
          emptied = await emptyTables(dest.db).then(
            () => "done" as const,
            (err: Error) => err.message,
          );
        }
        const thawed: Outcome = await thaw(source.admin, frozen).then(
          () => "done" as const,
          (err: Error) => err.message,
        );
        throw new CommandError(
          `${(e as Error).message}\n${abandonReport({ id, from: model.tier, to, database: targetModel.database.name, emptied, thawed })}`,
        );
      }
      const rows = expected.reduce((n, t) => n + t.rows, 0);
      io.out(
        `copied and verified ${expected.length} table(s), ${rows} row(s) (row counts and content checksums match)`,
      );
      for (const t of expected) io.out(`  ${t.table}: ${t.rows} row(s)`);
      const steps = nextSteps(ctx.cfg.stack, model, to);
      try {
        await source.admin.query(
          `ALTER DATABASE ${quoteIdent(model.database.name)} ALLOW_CONNECTIONS false`,
        );
      } catch (e) {
        throw new CommandError(
          closeFailedReport((e as Error).message, model, to, tenant.file, steps),
        );
      }
      io.out(
        `closed the source: database ${model.database.name} on cluster ${model.tier} kept with ALLOW_CONNECTIONS false`,
      );

      try {
        rewriteTenantFile(path.resolve(io.root, tenant.file), to);
      } catch (e) {
        throw new CommandError(
          rewriteFailedReport((e as Error).message, model, to, tenant.file, steps),
        );
      }
      io.out(`rewrote ${tenant.file}: tier: ${to}, move removed`);
      io.out("");
      for (const line of steps) io.out(line);
      return EXIT.ok;
    } finally {
      await close(source);
      if (dest !== undefined) await close(dest);
    }
  });
}

/** The advisory lock key of a tenant's move: one move per tenant database at a time. */
export const moveLockName = (database: string) => `pg-tenants:move:${database}`;

/**
 * Takes the move's session-level advisory lock on the source cluster; it holds until the
 * source connection closes. A second move of the same tenant is refused before it touches anything.
 */
async function lockMove(source: Side, model: TenantModel): Promise<void> {
  const name = moveLockName(model.database.name);
  const r = await source.admin.query<{ locked: boolean }>(
    "SELECT pg_try_advisory_lock(hashtext($1)) AS locked",
    [name],
  );
  if (!r.rows[0].locked) {
    throw new CommandError(
      `another move of tenant ${model.id} is running (advisory lock ${name} is held on cluster ${source.target.tier}): wait for it to end; nothing was changed`,
    );
  }
}

/** "done", "skipped" (not needed), or the error message of a step that failed. */
export type Outcome = "done" | "skipped" | string;

/** What an abandoned move left, step by step, and what remains to do by hand. */
export function abandonReport(o: {
  id: string;
  from: string;
  to: string;
  database: string;
  emptied: Outcome;
  thawed: Outcome;
}): string {
  const target =
    o.emptied === "skipped"
      ? `the target database on cluster ${o.to} was left as it was (the failed load committed nothing)`
      : o.emptied === "done"
        ? `the target database on cluster ${o.to} was emptied again`
        : `emptying the target database ${o.database} on cluster ${o.to} failed (${o.emptied}): it still holds the copied rows; empty its tables (TRUNCATE, as the provisioning role) before the next move`;
  const source =
    o.thawed === "done"
      ? `the source on cluster ${o.from} serves as before (logins restored)`
      : `the source on cluster ${o.from} does not serve yet: ${o.thawed}`;
  return `the move was abandoned: ${target}, ${source}; fix the cause and run npm run move -- ${o.id} again`;
}

/** The copy is verified but the source could not be closed: nothing is switched yet. */
export function closeFailedReport(
  cause: string,
  model: TenantModel,
  to: string,
  file: string,
  steps: string[],
): string {
  return [
    `closing the source failed (${cause})`,
    `state: the target database ${model.database.name} on cluster ${to} holds the verified copy; the source on cluster ${model.tier} still allows connections but its logins are NOLOGIN; ${file} is unchanged.`,
    `to finish by hand: as the provisioning role on cluster ${model.tier} run ALTER DATABASE ${quoteIdent(model.database.name)} ALLOW_CONNECTIONS false; then set tier: ${to} and remove move in ${file}, and:`,
    ...steps,
  ].join("\n");
}

/** The clusters are switched but the tenant file still declares the move. */
export function rewriteFailedReport(
  cause: string,
  model: TenantModel,
  to: string,
  file: string,
  steps: string[],
): string {
  return [
    `rewriting ${file} failed (${cause})`,
    `state: the move is done on the clusters: the target database ${model.database.name} on cluster ${to} holds the verified copy, the source on cluster ${model.tier} is closed (ALLOW_CONNECTIONS false, logins NOLOGIN).`,
    `to finish by hand: set tier: ${to} and remove move in ${file}, then:`,
    ...steps,
  ].join("\n");
}

async function open(target: ClusterTarget, model: TenantModel, hint?: string): Promise<Side> {
  const admin = await connect(target);
  try {
    const exists = await admin.query("SELECT datallowconn FROM pg_database WHERE datname = $1", [
      model.database.name,
    ]);
    if (exists.rowCount === 0) {
      throw new CommandError(
        `database ${model.database.name} does not exist on cluster "${target.tier}"${hint ? `: ${hint}` : ""}`,
      );
    }
    const db = await connect(target, model.database.name);
    return { target, admin, db };
  } catch (e) {
    await admin.end().catch(() => undefined);
    throw e;
  }
}

async function close(side: Side): Promise<void> {
  await side.db.end().catch(() => undefined);
  await side.admin.end().catch(() => undefined);
}

/** Table columns as `schema.table(col type, ...)`, to compare the two databases' shapes. */
async function shape(db: Client): Promise<Map<string, string>> {
  const r = await db.query<{ t: string; cols: string }>(`
    SELECT c.table_schema || '.' || c.table_name AS t,
           string_agg(c.column_name || ' ' || c.data_type, ', ' ORDER BY c.ordinal_position) AS cols
    FROM information_schema.columns c
    JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
    WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
    GROUP BY 1`);
  return new Map(r.rows.map((row) => [row.t, row.cols]));
}

/** The target must be the empty database the program provisioned, shaped like the source. */
async function checkTarget(
  source: Client,
  dest: Client,
  model: TenantModel,
  tier: string,
): Promise<void> {
  const stats = await tableStats(dest);
  const filled = stats.filter((s) => s.rows > 0);
  if (filled.length > 0) {
    throw new CommandError(
      `the target database ${model.database.name} on cluster ${tier} is not empty (${filled.map((s) => `${s.table}: ${s.rows} row(s)`).join(", ")}): a move only fills the empty database the program provisioned; nothing was changed`,
    );
  }
  const [a, b] = [await shape(source), await shape(dest)];
  const problems: string[] = [];
  for (const [table, cols] of a) {
    if (!b.has(table)) problems.push(`${table} is missing`);
    else if (b.get(table) !== cols)
      problems.push(`${table} has columns (${b.get(table)}) instead of (${cols})`);
  }
  for (const table of b.keys())
    if (!a.has(table)) problems.push(`${table} exists only on the target`);
  if (problems.length > 0) {
    throw new CommandError(
      `the target database on cluster ${tier} differs from the source: ${problems.join("; ")}. Apply the tenant's migrations to the target (as ${model.names.owner}) and run the move again; nothing was changed`,
    );
  }
}

async function copy(
  source: Side,
  dest: Side,
  model: TenantModel,
  targetModel: TenantModel,
  pgDump: ReturnType<typeof findPgTool>,
  pgRestore: ReturnType<typeof findPgTool>,
  env: NodeJS.ProcessEnv,
  progress: { loaded: boolean },
): Promise<TableStats[]> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-move-"));
  const file = path.join(work, "data.dump");
  try {
    await runPgTool(
      pgDump,
      // The history is the target's own (cloned at the same version, checked before the copy).
      ["--data-only", `--exclude-schema=${HISTORY_SCHEMA}`, "--format=custom", `--file=${file}`],
      libpqEnv(source.target, model.database.name, env),
      `dumping ${model.database.name} on cluster "${source.target.tier}"`,
    );
    await runPgTool(
      pgRestore,
      [
        "--data-only",
        "--single-transaction",
        "--exit-on-error",
        `--dbname=${targetModel.database.name}`,
        file,
      ],
      libpqEnv(dest.target, targetModel.database.name, env),
      `loading into ${targetModel.database.name} on cluster "${dest.target.tier}"`,
    );
    progress.loaded = true;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  const expected = await tableStats(source.db);
  const actual = await tableStats(dest.db);
  const problems = compareStats(expected, actual, `the target on cluster ${dest.target.tier}`);
  if (problems.length > 0) throw new CommandError(`verification failed: ${problems.join("; ")}`);
  return expected;
}

/** Empties every user table of the target, so that a retry starts from the provisioned state. */
async function emptyTables(db: Client): Promise<void> {
  const tables = await db.query<{ sql: string }>(`
    SELECT format('TRUNCATE %s RESTART IDENTITY CASCADE', string_agg(format('%I.%I', n.nspname, c.relname), ', ')) AS sql
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
    HAVING count(*) > 0`);
  if (tables.rowCount !== 0) await db.query(tables.rows[0].sql);
}

/** Sets `tier` and drops `move`, keeping the file's comments and layout. */
export function rewriteTenantFile(file: string, tier: string): void {
  const doc = parseDocument(fs.readFileSync(file, "utf8"));
  doc.set("tier", tier);
  doc.delete("move");
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, doc.toString());
  fs.renameSync(tmp, file);
}

/** The placement's URN in the stack state: the parent chain Tenant > TenantPlacement. */
export function placementUrn(stack: string, model: TenantModel): string {
  return `urn:pulumi:${stack}::${PROJECT}::pg-tenants:index:Tenant$pg-tenants:index:TenantPlacement::${model.logical.placement}`;
}

/** What the operator does after a move, with the exact names. */
export function nextSteps(stack: string, model: TenantModel, to: string): string[] {
  const roles = [model.names.rw, model.names.ro, model.names.group, model.names.owner];
  return [
    "Next steps:",
    `  1. Commit the tenant file. Before the next pulumi up, take the source placement out of the stack state`,
    `     (the engine would otherwise plan to delete the protected database ${model.database.name} on ${model.tier} and refuse):`,
    `       pulumi state delete --stack ${stack} --force --target-dependents '${placementUrn(stack, model)}'`,
    `     This changes only the state: the source database and roles stay on cluster ${model.tier}.`,
    `  2. pulumi up: the credentials now point at cluster ${to}; ${model.tier}'s pg_hba no longer admits the tenant.`,
    `  3. When the source copy is no longer wanted (npm run audit lists it as retained), as the provisioning role on ${model.tier}:`,
    `       DROP DATABASE ${model.database.name};`,
    `       DROP ROLE ${roles.join(", ")};`,
  ];
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
