import * as fs from "fs";
import * as path from "path";
import type { Client } from "pg";
import { parseDocument } from "yaml";
import type { TenantModel } from "../infra/model";
import { PROJECT } from "../infra/config";
import { isLoginKind } from "../infra/naming";
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
  StackContext,
  tenantOfRole,
  UsageError,
} from "./lib/cli";
import { databaseContents, compareContents, describeContents } from "./lib/contents";
import { copyContents, emptyContents, requireOwnOwners, tablesInLoadOrder } from "./lib/copy";
import { endSessions } from "./lib/freeze";
import {
  ensureJournal,
  inTransaction,
  insertMove,
  MovePhase,
  MoveRow,
  openMove,
  setPhase,
} from "./lib/moveJournal";
import {
  ClusterTarget,
  clusterTarget,
  connect,
  describeHolders,
  isTimeout,
  lockHolders,
  lockWaitMessage,
} from "./lib/pg";
import { tableStats } from "./lib/tables";
import { requireSameVersion } from "./lib/migrations/move";

/**
 * `pg-tenants move <tenant> [--stack <name>] [--wait <seconds>] [--abort]`: carries out the tier
 * move a tenant file declares (`move: { to: <tier> }`), after `pulumi up` has provisioned the
 * target placement `<id>@<to>` (an empty database with the tenant's roles and grants), as a
 * journaled operation (tools/lib/moveJournal.ts) that any later run finishes or gives back:
 *
 *  1. checks: target database exists, is empty, has the source's tables, columns and template
 *     version; the source's large objects belong to the tenant (nothing is changed before);
 *  2. `frozen`: login roles NOLOGIN, committed with the journal row; their sessions ended;
 *  3. `copied`: tables, sequences and large objects copied with COPY in one target transaction
 *     (tools/lib/copy.ts: no pg_dump, no child process) and verified inside it before it commits;
 *  4. `closed`: the source database ALLOW_CONNECTIONS false (kept, never dropped), committed
 *     with the journal;
 *  5. `done`: the tenant file rewritten to `tier: <to>` without `move`.
 *
 * Re-running after any interruption resumes from the journal (a target that already verifies is
 * not copied again; one that does not is emptied and copied again). `--abort`, a failure before
 * the close, or Ctrl-C before the close gives the source back: logins and connections restored
 * with the journal in one transaction, then the target emptied. One run per tenant at a time: a
 * session advisory lock on the source cluster.
 */

interface Side {
  target: ClusterTarget;
  admin: Client;
}

/** What the run is doing, for the message an interruption prints. */
interface RunState {
  id: string;
  from: string;
  to: string;
  file: string;
  row?: MoveRow;
  /** Connections whose work an interruption cuts short (the copy's two sessions). */
  cut: Set<Client>;
  interrupted?: NodeJS.Signals;
}

/**
 * Fault injection for the tests of interrupted moves (`PGTENANTS_FAILPOINT=move:<name>`): the run
 * stops at that point and waits to be killed or interrupted, saying so on stderr.
 */
export const FAILPOINTS = ["frozen", "loading", "loaded", "copied", "closed"] as const;
export type Failpoint = (typeof FAILPOINTS)[number];
const FAILPOINT_ENV = "PGTENANTS_FAILPOINT";

export async function main(argv: string[], io: CommandIo = processIo()): Promise<number> {
  return runCommand(io, async () => {
    const args = readCommandArgs(argv, "move");
    const [id] = args.positionals;
    const waitSeconds = Number(args.value("wait"));
    if (!Number.isFinite(waitSeconds) || waitSeconds < 0)
      throw new UsageError(`--wait must be a number of seconds\nusage: ${args.usage}`);
    const ctx = loadContext(args.value("stack"), io.root);
    const { tenant, model } = findTenant(ctx, id);
    const file = path.resolve(io.root, tenant.file);

    // The journal lives on the source cluster; once the tenant file says the new tier, the
    // source is the tier an open move of the database came from.
    const from = model.move !== undefined ? model.tier : await sourceOfOpenMove(ctx, model, io);
    if (from === undefined) {
      throw new CommandError(
        args.flag("abort")
          ? `no move of tenant ${id} is in progress: nothing to abort`
          : `tenant ${id} declares no move: add "move: { to: <tier> }" to ${tenant.file}, run pulumi up (it provisions the target database), then npm run move -- ${id}`,
      );
    }
    const source: Side = await openSide(clusterTarget(ctx.cfg, from, ctx.root, io.env));
    const state: RunState = { id, from, to: "", file: tenant.file, cut: new Set() };
    const stopOnSignal = onInterrupt(state, io);
    try {
      await ensureJournal(source.admin, source.target.user, from);
      await lockMove(source, model.database.name, id);
      let row = await openMove(source.admin, model.database.name);
      const to = row?.toTier ?? model.move?.to;
      if (to === undefined) throw new CommandError(`tenant ${id} declares no move`);
      state.to = to;
      state.row = row;
      const targetModel = model.move?.target ?? buildMovedModel(model, to);
      const dest = clusterTarget(ctx.cfg, to, ctx.root, io.env);

      if (args.flag("abort")) {
        if (row === undefined) {
          throw new CommandError(
            `no move of tenant ${id} is in progress (the journal on cluster ${from} has none open): nothing to abort; the tenant serves from ${model.tier}`,
          );
        }
        await giveBack(source, dest, row, targetModel, file, io, "aborted on request");
        return EXIT.ok;
      }
      if (row?.phase === "aborting") {
        await giveBack(source, dest, row, targetModel, file, io, "an earlier abort is finished");
        row = undefined;
      }
      if (row === undefined) {
        if (model.move === undefined) throw new CommandError(`tenant ${id} declares no move`);
        row = await start(ctx, source, dest, model, targetModel, waitSeconds, io, state);
      } else {
        io.out(
          `resuming the move of tenant ${id} from cluster ${from} to cluster ${to} (journal: ${describePhase(row.phase)})`,
        );
        await refreeze(source, model, row, waitSeconds, file);
      }
      state.row = row;
      return await advance(source, dest, model, targetModel, row, file, ctx, io, state);
    } finally {
      stopOnSignal();
      await source.admin.end().catch(() => undefined);
    }
  });
}

/** The tenant's model at the target tier, when the file no longer declares the move. */
function buildMovedModel(model: TenantModel, to: string): TenantModel {
  if (model.tier === to) return model;
  throw new CommandError(
    `the journal names a move of tenant ${model.id} to cluster ${to}, but its file says tier ${model.tier}: set tier back to ${model.tier} with move: { to: ${to} }, or run the move with the file as it was`,
  );
}

/** The tier an open move of the tenant's database started from, on any cluster of the stack. */
async function sourceOfOpenMove(
  ctx: StackContext,
  model: TenantModel,
  io: CommandIo,
): Promise<string | undefined> {
  for (const tier of Object.keys(ctx.cfg.clusters)) {
    if (tier === model.tier) continue;
    let admin: Client | undefined;
    try {
      admin = await connect(clusterTarget(ctx.cfg, tier, ctx.root, io.env));
      const has = await admin.query<{ t: string | null }>(
        "SELECT to_regclass('pgtenants_history.moves')::text AS t",
      );
      if (has.rows[0].t === null) continue;
      if ((await openMove(admin, model.database.name)) !== undefined) return tier;
    } catch {
      // A cluster that cannot be read holds no journal this run can act on.
    } finally {
      await admin?.end().catch(() => undefined);
    }
  }
  return undefined;
}

async function openSide(target: ClusterTarget): Promise<Side> {
  return { target, admin: await connect(target) };
}

/** The advisory lock key of a tenant's move: one move per tenant database at a time. */
export const moveLockName = (database: string) => `pg-tenants:move:${database}`;

/**
 * Takes the move's session-level advisory lock on the source cluster; it holds until the
 * source connection closes (also when the process is killed). A second run is refused.
 */
async function lockMove(source: Side, database: string, id: string): Promise<void> {
  const name = moveLockName(database);
  const r = await source.admin.query<{ locked: boolean }>(
    "SELECT pg_try_advisory_lock(hashtext($1)) AS locked",
    [name],
  );
  if (!r.rows[0].locked) {
    throw new CommandError(
      `another move of tenant ${id} is running (advisory lock ${name} is held on cluster ${source.target.tier}): wait for it to end; nothing was changed`,
    );
  }
}

/** Checks, then the freeze: the journal row and NOLOGIN commit together. */
async function start(
  ctx: StackContext,
  source: Side,
  dest: ClusterTarget,
  model: TenantModel,
  targetModel: TenantModel,
  waitSeconds: number,
  io: CommandIo,
  state: RunState,
): Promise<MoveRow> {
  const to = targetModel.tier;
  await checks(ctx, source, dest, model, targetModel).catch(async (e: unknown) => {
    if (!isTimeout(e)) throw e;
    const what = `checking the target database ${targetModel.database.name} on cluster "${to}"`;
    throw new CommandError(
      `${lockWaitMessage(e, what).replace(/: find it with .*$/, "")}: ${await blockers(dest, targetModel.database.name, tenantOfRole(ctx))}; nothing was changed`,
    );
  });
  if (state.interrupted !== undefined)
    throw new CommandError(`interrupted (${state.interrupted}); nothing was changed`);
  io.out(
    `moving tenant ${model.id}: database ${model.database.name} from cluster ${model.tier} to cluster ${to}`,
  );
  const logins = model.roles.filter((r) => isLoginKind(r.kind)).map((r) => r.name);
  let row: MoveRow;
  try {
    row = await inTransaction(source.admin, async () => {
      const current = await source.admin.query<{ rolname: string }>(
        "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[]) AND rolcanlogin",
        [logins],
      );
      const frozen = logins.filter((l) => current.rows.some((r) => r.rolname === l));
      for (const role of frozen) {
        await source.admin.query(`ALTER ROLE ${quoteIdent(role)} NOLOGIN`).catch((e: Error) => {
          throw new CommandError(
            `freezing the source failed: ALTER ROLE ${quoteIdent(role)} NOLOGIN: ${e.message}; nothing was changed, the source serves as before`,
          );
        });
      }
      return insertMove(source.admin, {
        database: model.database.name,
        tenant: model.id,
        stack: ctx.cfg.stack,
        fromTier: model.tier,
        toTier: to,
        logins: frozen,
      });
    });
  } catch (e) {
    throw e instanceof CommandError
      ? e
      : new CommandError(lockWaitMessage(e, "freezing the source"));
  }
  state.row = row;
  io.progress?.(`move: waiting up to ${waitSeconds} s for tenant ${model.id}'s sessions to end`);
  try {
    await endSessions(source.admin, model, waitSeconds);
  } catch (e) {
    await giveBack(source, dest, row, targetModel, "", io, (e as Error).message, true);
    throw new CommandError((e as Error).message);
  }
  io.out(`froze the source: ${row.logins.join(", ") || "no login"} set NOLOGIN, no session left`);
  await failpoint("frozen", io);
  if (state.interrupted !== undefined) {
    const report = await giveBack(source, dest, row, targetModel, "", io, "interrupted", true);
    throw new CommandError(`interrupted (${state.interrupted})\n${report}`);
  }
  return row;
}

/** What must hold before anything is changed: target empty and alike, versions equal, owners known. */
async function checks(
  ctx: StackContext,
  source: Side,
  dest: ClusterTarget,
  model: TenantModel,
  targetModel: TenantModel,
): Promise<void> {
  const to = targetModel.tier;
  await withDatabase(
    dest,
    targetModel.database.name,
    async (db) => {
      await withDatabase(source.target, model.database.name, async (src) => {
        await checkTarget(src, db, targetModel, to);
        await requireSameVersion(src, db, model.id, ctx.cfg.stack);
        await tablesInLoadOrder(src);
        const objects = await src.query<{ oid: string; owner: string }>(
          "SELECT oid::text AS oid, pg_get_userbyid(lomowner)::text AS owner FROM pg_largeobject_metadata",
        );
        requireOwnOwners(objects.rows, tenantRoles(model));
      });
    },
    `run pulumi up first: while the tenant file declares the move, the program provisions it`,
  );
}

/** A resumed move freezes again: the logins may have been given LOGIN back meanwhile (pulumi up). */
async function refreeze(
  source: Side,
  model: TenantModel,
  row: MoveRow,
  waitSeconds: number,
  file: string,
): Promise<void> {
  if (row.phase === "closed" || row.phase === "done") return;
  for (const role of row.logins) await source.admin.query(`ALTER ROLE ${quoteIdent(role)} NOLOGIN`);
  try {
    await endSessions(source.admin, model, waitSeconds);
  } catch (e) {
    throw new CommandError(
      `${(e as Error).message}\n${stateReport(row, file)}\n${resumeHint(row)}`,
    );
  }
}

/** Runs the remaining steps from the row's phase to `done`. */
async function advance(
  source: Side,
  dest: ClusterTarget,
  model: TenantModel,
  targetModel: TenantModel,
  row: MoveRow,
  file: string,
  ctx: StackContext,
  io: CommandIo,
  state: RunState,
): Promise<number> {
  const shownFile = path.relative(io.root, file);
  if (row.phase === "frozen" || row.phase === "copied") {
    let expected;
    try {
      expected = await copyOrVerify(source, dest, model, targetModel, io, state);
    } catch (e) {
      const what = `copying ${model.database.name} into cluster "${dest.tier}"`;
      const why =
        state.interrupted !== undefined
          ? `interrupted (${state.interrupted})`
          : isTimeout(e)
            ? `${lockWaitMessage(e, what).replace(/: find it with .*$/, "")}: ${await blockers(dest, targetModel.database.name, tenantOfRole(ctx))}`
            : e instanceof CommandError
              ? e.message
              : `${what} failed: ${(e as Error).message}`;
      const report = await giveBack(source, dest, row, targetModel, file, io, why, true);
      throw new CommandError(`${why}\n${report}`);
    }
    io.out(
      `copied and verified ${describeContents(expected)} (row counts, content checksums, sequence values and large objects match)`,
    );
    for (const t of expected.tables) io.out(`  ${t.table}: ${t.rows} row(s)`);
    if (row.phase === "frozen") {
      await setPhase(source.admin, row.id, "copied");
      row.phase = "copied";
    }
    await failpoint("copied", io);
    if (state.interrupted !== undefined) {
      const report = await giveBack(source, dest, row, targetModel, file, io, "interrupted", true);
      throw new CommandError(`interrupted (${state.interrupted})\n${report}`);
    }
  }
  if (row.phase === "copied") {
    try {
      await inTransaction(source.admin, async () => {
        await source.admin.query(
          `ALTER DATABASE ${quoteIdent(model.database.name)} ALLOW_CONNECTIONS false`,
        );
        await setPhase(source.admin, row.id, "closed");
      });
    } catch (e) {
      throw new CommandError(
        `closing the source failed (${lockWaitMessage(e, "closing the source")})\n${stateReport(row, shownFile)}\n${resumeHint(row)}`,
      );
    }
    row.phase = "closed";
    io.out(
      `closed the source: database ${model.database.name} on cluster ${model.tier} kept with ALLOW_CONNECTIONS false`,
    );
    await failpoint("closed", io);
  }
  // From here on the move only finishes: an interruption waits for the file to be rewritten.
  const frozenFor = await source.admin.query<{ s: number }>(
    `SELECT extract(epoch FROM pg_catalog.now() - frozen_at)::float8 AS s FROM pgtenants_history.moves WHERE id = $1`,
    [row.id],
  );
  try {
    if (declaresMove(file, row.toTier)) rewriteTenantFile(file, row.toTier);
  } catch (e) {
    throw new CommandError(
      `rewriting ${shownFile} failed (${(e as Error).message})\n${stateReport(row, shownFile)}\n${resumeHint(row)}`,
    );
  }
  await setPhase(source.admin, row.id, "done");
  io.out(`rewrote ${shownFile}: tier: ${row.toTier}, move removed`);
  io.out(
    `the tenant was frozen (served nowhere) for ${frozenFor.rows[0].s.toFixed(1)} s; it serves again once pulumi up points its credentials at ${row.toTier}`,
  );
  io.out("");
  for (const line of nextSteps(ctx.cfg.stack, { ...model, tier: row.fromTier }, row.toTier))
    io.out(line);
  return EXIT.ok;
}

/**
 * The copy, or on a resumed run the proof that an earlier one committed: a target that already
 * holds exactly the source's contents is kept; anything else is emptied and copied again.
 * Verification runs inside the target's transaction, before it commits: an unverified copy is
 * never left behind.
 */
async function copyOrVerify(
  source: Side,
  dest: ClusterTarget,
  model: TenantModel,
  targetModel: TenantModel,
  io: CommandIo,
  state: RunState,
) {
  const src = await connect(source.target, model.database.name);
  // A second session on the source's snapshot computes the expected contents while the first
  // one streams the copy: the freeze lasts the longer of the two, not their sum.
  const counter = await connect(source.target, model.database.name);
  const tgt = await connect(dest, targetModel.database.name);
  for (const c of [src, counter, tgt]) state.cut.add(c);
  try {
    await src.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const snapshot = (await src.query<{ s: string }>("SELECT pg_export_snapshot() AS s")).rows[0].s;
    if (!/^[0-9A-F-]+$/i.test(snapshot))
      throw new CommandError(`unexpected snapshot id ${snapshot}`);
    await counter.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    await counter.query(`SET TRANSACTION SNAPSHOT '${snapshot}'`);
    await tgt.query("BEGIN");
    const present = await databaseContents(tgt);
    if (hasData(present)) {
      const expected = await databaseContents(counter);
      if (compareContents(expected, present, "the target").length === 0) {
        await tgt.query("COMMIT");
        io.out(
          `the target on cluster ${dest.tier} already holds the verified copy (committed by an earlier run)`,
        );
        return expected;
      }
      await emptyContents(tgt);
    }
    const counting = databaseContents(counter);
    // Awaited after the copy; a failure meanwhile must not surface as an unhandled rejection.
    counting.catch(() => undefined);
    io.progress?.(`move: copying ${model.database.name} to cluster ${dest.tier}`);
    await copyContents(src, tgt, {
      allowedOwners: tenantRoles(targetModel),
      provisioner: dest.user,
      onTable: async () => {
        await failpoint("loading", io);
        checkInterrupted(state);
      },
    });
    const expected = await counting;
    const actual = await databaseContents(tgt);
    const problems = compareContents(expected, actual, `the target on cluster ${dest.tier}`);
    if (problems.length > 0) throw new CommandError(`verification failed: ${problems.join("; ")}`);
    await tgt.query("COMMIT");
    await failpoint("loaded", io);
    checkInterrupted(state);
    await src.query("COMMIT");
    return expected;
  } finally {
    for (const c of [src, counter, tgt]) {
      state.cut.delete(c);
      await c.end().catch(() => undefined);
    }
  }
}

const hasData = (c: Awaited<ReturnType<typeof databaseContents>>) =>
  c.tables.some((t) => t.rows > 0) || c.largeObjects.count > 0;

/** Who holds the locks a copy waited for, on the target database. */
async function blockers(
  dest: ClusterTarget,
  database: string,
  tenantOf: (role: string) => string | undefined,
): Promise<string> {
  try {
    return await withDatabase(dest, database, async (c) =>
      describeHolders(await lockHolders(c, database), tenantOf),
    );
  } catch {
    return "the blocking session could not be read; look in pg_locks on the target cluster";
  }
}

/** The roles a tenant's large objects may belong to. */
function tenantRoles(model: TenantModel): string[] {
  return model.roles.map((r) => r.name);
}

/**
 * Gives the source back: connections allowed again and the logins' LOGIN restored, committed
 * with the journal's `aborting`; then the target emptied and the journal `aborted`. Returns the
 * one-line report of what it did (and prints it unless the caller throws it).
 */
async function giveBack(
  source: Side,
  dest: ClusterTarget,
  row: MoveRow,
  targetModel: TenantModel,
  file: string,
  io: CommandIo,
  why: string,
  quiet = false,
): Promise<string> {
  const database = row.database;
  let thawed: Outcome = "done";
  try {
    await inTransaction(source.admin, async () => {
      await source.admin.query(`ALTER DATABASE ${quoteIdent(database)} ALLOW_CONNECTIONS true`);
      for (const role of row.logins)
        await source.admin.query(`ALTER ROLE ${quoteIdent(role)} LOGIN`);
      await setPhase(source.admin, row.id, "aborting", why);
    });
    row.phase = "aborting";
  } catch (e) {
    thawed = `${(e as Error).message}; as the provisioning role on cluster ${row.fromTier} run: ALTER DATABASE ${quoteIdent(database)} ALLOW_CONNECTIONS true; ${row.logins.map((r) => `ALTER ROLE ${quoteIdent(r)} LOGIN`).join("; ")} (or run npm run move -- ${row.tenant} --abort again)`;
  }
  let emptied: Outcome = "done";
  try {
    await withDatabase(dest, targetModel.database.name, async (db) => {
      const present = await databaseContents(db);
      if (!hasData(present)) {
        emptied = "skipped";
        return;
      }
      await inTransaction(db, () => emptyContents(db));
    });
  } catch (e) {
    emptied = lockWaitMessage(e, `emptying ${targetModel.database.name}`);
  }
  if (thawed === "done" && emptied !== "done" && emptied !== "skipped") {
    await setPhase(
      source.admin,
      row.id,
      "aborting",
      `${why}; emptying the target failed: ${emptied}`,
    ).catch(() => undefined);
  } else if (thawed === "done") {
    await setPhase(source.admin, row.id, "aborted", why).catch(() => undefined);
    row.phase = "aborted";
  }
  if (
    file !== "" &&
    thawed === "done" &&
    !declaresMove(file, row.toTier) &&
    fileSaysTier(file, row.toTier)
  ) {
    restoreTenantFile(file, row.fromTier, row.toTier);
  }
  const report = abandonReport({
    id: row.tenant,
    from: row.fromTier,
    to: row.toTier,
    database: targetModel.database.name,
    emptied,
    thawed,
  });
  if (!quiet) io.out(report);
  return report;
}

/** "done", "skipped" (not needed), or the error message of a step that failed. */
export type Outcome = "done" | "skipped" | string;

/** What giving the source back did, step by step, and what remains to do. */
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
      ? `the target database on cluster ${o.to} was left empty (the load was rolled back)`
      : o.emptied === "done"
        ? `the target database on cluster ${o.to} was emptied again`
        : `emptying the target database ${o.database} on cluster ${o.to} failed (${o.emptied}): it still holds the copied rows; run npm run move -- ${o.id} --abort again to empty it`;
  const source =
    o.thawed === "done"
      ? `the source on cluster ${o.from} serves as before (logins restored)`
      : `the source on cluster ${o.from} does not serve yet: giving it back failed (${o.thawed})`;
  return `the move was abandoned: ${target}, ${source}; fix the cause and run npm run move -- ${o.id} again`;
}

/** The journal's phase in words, as the tenant sees it. */
export function describePhase(phase: MovePhase): string {
  switch (phase) {
    case "frozen":
      return "frozen, not copied yet";
    case "copied":
      return "frozen, copied and verified, source not closed yet";
    case "closed":
      return "copied and verified, source closed, tenant file not rewritten yet";
    case "done":
      return "done";
    case "aborting":
      return "being given back";
    case "aborted":
      return "aborted";
  }
}

/** Exactly the state a tenant is in at a phase of its move. */
export function stateReport(
  row: Pick<MoveRow, "tenant" | "fromTier" | "toTier" | "phase" | "database">,
  file: string,
): string {
  const frozen = `its logins are NOLOGIN on cluster ${row.fromTier}: tenant ${row.tenant} is served nowhere`;
  switch (row.phase) {
    case "frozen":
      return `state: ${frozen}; the target database ${row.database} on cluster ${row.toTier} holds no verified copy yet.`;
    case "copied":
      return `state: ${frozen}; the target database ${row.database} on cluster ${row.toTier} holds the verified copy; the source still allows connections; ${file} is unchanged.`;
    case "closed":
      return `state: the source database ${row.database} on cluster ${row.fromTier} is closed (ALLOW_CONNECTIONS false, logins NOLOGIN) and the target on cluster ${row.toTier} holds the verified copy; tenant ${row.tenant} is served nowhere until ${file} says tier: ${row.toTier} and pulumi up runs.`;
    case "aborting":
      return `state: tenant ${row.tenant} serves from cluster ${row.fromTier} again (logins restored); the target database on cluster ${row.toTier} may still hold a copy.`;
    case "done":
    case "aborted":
      return `state: the move is ${row.phase}.`;
  }
}

/** The one command that finishes, and the one that gives back. */
export function resumeHint(row: Pick<MoveRow, "tenant" | "fromTier">): string {
  return `run npm run move -- ${row.tenant} to finish the move, or npm run move -- ${row.tenant} --abort to serve from cluster ${row.fromTier} again`;
}

/** Runs `fn` with a connection to a database of a cluster; the database must exist. */
async function withDatabase<T>(
  target: ClusterTarget,
  database: string,
  fn: (c: Client) => Promise<T>,
  hint?: string,
): Promise<T> {
  const admin = await connect(target);
  try {
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    if (exists.rowCount === 0) {
      throw new CommandError(
        `database ${database} does not exist on cluster "${target.tier}"${hint ? `: ${hint}` : ""}`,
      );
    }
  } finally {
    await admin.end().catch(() => undefined);
  }
  const c = await connect(target, database);
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Table columns as `schema.table(col type, ...)`, to compare the two databases' shapes. */
async function shape(db: Client): Promise<Map<string, string>> {
  const r = await db.query<{ t: string; cols: string }>(`
    SELECT c.table_schema || '.' || c.table_name AS t,
           string_agg(c.column_name || ' ' || c.data_type, ', ' ORDER BY c.ordinal_position) AS cols
    FROM information_schema.columns c
    JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
    WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema', 'pgtenants_history')
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
  const objects = await dest.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_largeobject_metadata",
  );
  if (filled.length > 0 || objects.rows[0].n > 0) {
    const what = [
      ...filled.map((s) => `${s.table}: ${s.rows} row(s)`),
      ...(objects.rows[0].n > 0 ? [`${objects.rows[0].n} large object(s)`] : []),
    ];
    throw new CommandError(
      `the target database ${model.database.name} on cluster ${tier} is not empty (${what.join(", ")}): a move only fills the empty database the program provisioned; nothing was changed. If it holds a copy from an earlier move that was given back, empty it as the provisioning role on cluster ${tier} (TRUNCATE its tables) after checking nobody wrote there`,
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

/** True while the file still declares the move to `to`. */
function declaresMove(file: string, to: string): boolean {
  const doc = parseDocument(fs.readFileSync(file, "utf8"));
  return doc.getIn(["move", "to"]) === to;
}

function fileSaysTier(file: string, tier: string): boolean {
  return parseDocument(fs.readFileSync(file, "utf8")).get("tier") === tier;
}

/** Sets `tier` and drops `move`, keeping the file's comments and layout. */
export function rewriteTenantFile(file: string, tier: string): void {
  const doc = parseDocument(fs.readFileSync(file, "utf8"));
  doc.set("tier", tier);
  doc.delete("move");
  writeAtomically(file, doc.toString());
}

/** Undoes rewriteTenantFile after a give-back: the file declares the move again. */
function restoreTenantFile(file: string, from: string, to: string): void {
  const doc = parseDocument(fs.readFileSync(file, "utf8"));
  doc.set("tier", from);
  doc.setIn(["move", "to"], to);
  writeAtomically(file, doc.toString());
}

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/** The placement's URN in the stack state: the parent chain Tenant > TenantPlacement. */
export function placementUrn(stack: string, model: TenantModel): string {
  return `urn:pulumi:${stack}::${PROJECT}::pg-tenants:index:Tenant$pg-tenants:index:TenantPlacement::${model.id}@${model.tier}`;
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

/**
 * While a move runs, SIGINT and SIGTERM stop it: the copy's connections are cut (the target's
 * transaction rolls back) and, before the source is closed, the source is given back. A second
 * signal ends the process at once; the journal keeps the state for the next run.
 */
function onInterrupt(state: RunState, io: CommandIo): () => void {
  const handler = (signal: NodeJS.Signals) => {
    if (state.interrupted !== undefined) {
      io.err(
        `error: interrupted again (${signal}): stopping now. ${state.row !== undefined ? `${stateReport(state.row, state.file)} ${resumeHint(state.row)}` : "nothing was changed"}`,
      );
      process.removeListener("SIGINT", handler);
      process.removeListener("SIGTERM", handler);
      process.kill(process.pid, signal);
      return;
    }
    state.interrupted = signal;
    io.progress?.(`move: ${signal}: stopping (a second ${signal} stops at once)`);
    for (const c of state.cut) {
      (
        c as unknown as { connection?: { stream?: { destroy(): void } } }
      ).connection?.stream?.destroy();
    }
    for (const w of waiting) w();
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return () => {
    process.removeListener("SIGINT", handler);
    process.removeListener("SIGTERM", handler);
  };
}

const waiting = new Set<() => void>();

/** Stops at a failpoint the environment names until the run is interrupted. */
async function failpoint(name: Failpoint, io: CommandIo): Promise<void> {
  if (io.env[FAILPOINT_ENV] !== `move:${name}`) return;
  io.err(`failpoint move:${name} reached`);
  await new Promise<void>((resolve) => {
    const done = () => {
      waiting.delete(done);
      resolve();
    };
    waiting.add(done);
  });
}

/** Stops the run where it stands when it was interrupted. */
function checkInterrupted(state: RunState): void {
  if (state.interrupted !== undefined) throw new CommandError(`interrupted (${state.interrupted})`);
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
