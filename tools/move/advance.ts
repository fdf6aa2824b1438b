import * as path from "path";
import type { TenantModel } from "../../infra/model";
import { quoteIdent } from "../../infra/sql";
import { CommandError, CommandIo, EXIT, StackContext, tenantOfRole } from "../lib/cli";
import { databaseContents, compareContents, describeContents } from "../lib/contents";
import { copyContents, emptyContents } from "../lib/copy";
import { ClusterTarget, connect, isTimeout, lockWaitMessage } from "../lib/pg";
import { blockers, hasData, Side, tenantRoles } from "./databases";
import { giveBack } from "./giveBack";
import { checkInterrupted, failpoint, RunState } from "./interrupt";
import { inTransaction, MoveRow, setPhase } from "./journal";
import { nextSteps, resumeHint, stateReport } from "./messages";
import { declaresMove, rewriteTenantFile } from "./tenantFile";

/**
 * A move after the freeze, phase by phase: `copied` (the copy, or the proof of an earlier one),
 * `closed` (the source closed) and `done` (the tenant file rewritten).
 */

/** Runs the remaining steps from the row's phase to `done`. */
export async function advance(
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
