import type { TenantModel } from "../../infra/model";
import { quoteIdent } from "../../infra/sql";
import type { CommandIo } from "../lib/cli";
import { databaseContents } from "../lib/contents";
import { emptyContents } from "../lib/copy";
import { ClusterTarget, lockWaitMessage } from "../lib/pg";
import { hasData, Side, withDatabase } from "./databases";
import { inTransaction, MoveRow, setPhase } from "./journal";
import { abandonReport, Outcome } from "./messages";
import { declaresMove, fileSaysTier, restoreTenantFile } from "./tenantFile";

/**
 * Gives the source back: connections allowed again and the logins' LOGIN restored, committed
 * with the journal's `aborting`; then the target emptied and the journal `aborted`. Returns the
 * one-line report of what it did (and prints it unless the caller throws it).
 */
export async function giveBack(
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
