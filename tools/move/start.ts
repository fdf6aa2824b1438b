import type { Client } from "pg";
import type { TenantModel } from "../../infra/model";
import { isLoginKind } from "../../infra/naming";
import { quoteIdent } from "../../infra/sql";
import { CommandError, CommandIo, StackContext, tenantOfRole } from "../lib/cli";
import { requireOwnOwners, tablesInLoadOrder } from "../lib/copy";
import { endSessions } from "../lib/freeze";
import { ClusterTarget, isTimeout, lockWaitMessage } from "../lib/pg";
import { tableStats } from "../lib/tables";
import { requireSameVersion } from "../lib/migrations/move";
import { blockers, Side, tenantRoles, withDatabase } from "./databases";
import { giveBack } from "./giveBack";
import { failpoint, RunState } from "./interrupt";
import { inTransaction, insertMove, MoveRow } from "./journal";
import { resumeHint, stateReport } from "./messages";

/**
 * The start of a move: the checks before anything is changed, then the freeze (phase `frozen`);
 * and the freeze again when a run resumes an open move.
 */

/** Checks, then the freeze: the journal row and NOLOGIN commit together. */
export async function start(
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

/** A resumed move freezes again: the logins may have been given LOGIN back meanwhile (pulumi up). */
export async function refreeze(
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
