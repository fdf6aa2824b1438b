import * as path from "path";
import type { Client } from "pg";
import type { TenantModel } from "../../infra/model";
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
  UsageError,
} from "../lib/cli";
import { clusterTarget, connect } from "../lib/pg";
import { advance } from "./advance";
import { openSide, Side } from "./databases";
import { giveBack } from "./giveBack";
import { onInterrupt, RunState } from "./interrupt";
import { ensureJournal, openMove } from "./journal";
import { describePhase } from "./messages";
import { refreeze, start } from "./start";

/**
 * `pg-tenants move <tenant> [--stack <name>] [--wait <seconds>] [--abort]`: carries out the tier
 * move a tenant file declares (`move: { to: <tier> }`), after `pulumi up` has provisioned the
 * target placement `<id>@<to>` (an empty database with the tenant's roles and grants), as a
 * journaled operation (tools/move/journal.ts) that any later run finishes or gives back:
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

// The move's reports, failpoints and tenant file rewrite, for the tests that read them.
export { FAILPOINTS } from "./interrupt";
export type { Failpoint } from "./interrupt";
export {
  abandonReport,
  describePhase,
  nextSteps,
  placementUrn,
  resumeHint,
  stateReport,
} from "./messages";
export type { Outcome } from "./messages";
export { rewriteTenantFile } from "./tenantFile";

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

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
