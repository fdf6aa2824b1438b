import type { Client } from "pg";
import { HISTORY_SCHEMA } from "../../infra/templates";
import { CommandError } from "../lib/cli";

/**
 * The journal of tier moves: one row per move in `pgtenants_history.moves` in the source
 * cluster's maintenance database (the provisioning role's own schema, created at bootstrap;
 * tenants cannot connect there). Each step that changes the source commits in the same
 * transaction as its journal row (the freeze with `frozen`, the close with `closed`, the give-back
 * with `aborted`), so the journal never says anything the source does not show. Steps on the
 * target (its one-transaction load) are checked again on the next run rather than trusted. The
 * row is found by whoever runs the command next, from any machine, which a file beside the stack
 * (lost with a CI runner's workspace) would not be.
 */

export const JOURNAL_TABLE = `${HISTORY_SCHEMA}.moves`;

/** A move's phases, in order; `aborting` and `aborted` are the way back. */
export const MOVE_PHASES = ["frozen", "copied", "closed", "done", "aborting", "aborted"] as const;
export type MovePhase = (typeof MOVE_PHASES)[number];

/** Phases of a move that is still open: a run resumes it, --abort gives the source back. */
export const OPEN_PHASES: readonly MovePhase[] = ["frozen", "copied", "closed", "aborting"];

export interface MoveRow {
  id: number;
  database: string;
  tenant: string;
  stack: string;
  fromTier: string;
  toTier: string;
  phase: MovePhase;
  /** The logins that were LOGIN before the freeze: they get it back when the move is aborted. */
  logins: string[];
  startedAt: Date;
  frozenAt: Date | null;
  closedAt: Date | null;
  detail: string | null;
}

const DDL = `
CREATE TABLE IF NOT EXISTS ${JOURNAL_TABLE} (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  database name NOT NULL,
  tenant text NOT NULL,
  stack text NOT NULL,
  from_tier text NOT NULL,
  to_tier text NOT NULL,
  phase text NOT NULL CHECK (phase IN (${MOVE_PHASES.map((p) => `'${p}'`).join(", ")})),
  logins text[] NOT NULL DEFAULT '{}',
  detail text,
  started_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  frozen_at timestamptz,
  closed_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE UNIQUE INDEX IF NOT EXISTS moves_open ON ${JOURNAL_TABLE} (database)
  WHERE phase IN (${OPEN_PHASES.map((p) => `'${p}'`).join(", ")});`;

/**
 * Creates the journal table if needed. The schema must exist and belong to the provisioning
 * role; a cluster bootstrapped elsewhere gets the statement that fixes it.
 */
export async function ensureJournal(
  admin: Client,
  provisioner: string,
  tier: string,
): Promise<void> {
  const r = await admin.query<{ owner: string }>(
    "SELECT pg_catalog.pg_get_userbyid(nspowner) AS owner FROM pg_catalog.pg_namespace WHERE nspname = $1",
    [HISTORY_SCHEMA],
  );
  if (r.rowCount === 0 || r.rows[0].owner !== provisioner) {
    throw new CommandError(
      `cluster "${tier}" has no schema ${HISTORY_SCHEMA} owned by ${provisioner} in its maintenance database, where moves keep their journal: as a superuser there run CREATE SCHEMA IF NOT EXISTS ${HISTORY_SCHEMA} AUTHORIZATION ${provisioner} (npm run local and the cluster bootstrap do), then run the move again; nothing was changed`,
    );
  }
  await admin.query(DDL);
}

interface RawRow {
  id: string;
  database: string;
  tenant: string;
  stack: string;
  from_tier: string;
  to_tier: string;
  phase: MovePhase;
  logins: string[];
  started_at: Date;
  frozen_at: Date | null;
  closed_at: Date | null;
  detail: string | null;
}

const toRow = (r: RawRow): MoveRow => ({
  id: Number(r.id),
  database: r.database,
  tenant: r.tenant,
  stack: r.stack,
  fromTier: r.from_tier,
  toTier: r.to_tier,
  phase: r.phase,
  logins: r.logins,
  startedAt: r.started_at,
  frozenAt: r.frozen_at,
  closedAt: r.closed_at,
  detail: r.detail,
});

/** The open move of a database, if any. */
export async function openMove(admin: Client, database: string): Promise<MoveRow | undefined> {
  const r = await admin.query<RawRow>(
    `SELECT * FROM ${JOURNAL_TABLE} WHERE database = $1 AND phase = ANY($2::text[])`,
    [database, OPEN_PHASES],
  );
  return r.rowCount === 0 ? undefined : toRow(r.rows[0]);
}

/** The last move of a database, open or not. */
export async function lastMove(admin: Client, database: string): Promise<MoveRow | undefined> {
  const r = await admin.query<RawRow>(
    `SELECT * FROM ${JOURNAL_TABLE} WHERE database = $1 ORDER BY id DESC LIMIT 1`,
    [database],
  );
  return r.rowCount === 0 ? undefined : toRow(r.rows[0]);
}

/** Starts a move's row (inside the freeze's transaction). */
export async function insertMove(
  admin: Client,
  m: Pick<MoveRow, "database" | "tenant" | "stack" | "fromTier" | "toTier" | "logins">,
): Promise<MoveRow> {
  const r = await admin.query<RawRow>(
    `INSERT INTO ${JOURNAL_TABLE} (database, tenant, stack, from_tier, to_tier, phase, logins, frozen_at)
     VALUES ($1, $2, $3, $4, $5, 'frozen', $6, pg_catalog.now()) RETURNING *`,
    [m.database, m.tenant, m.stack, m.fromTier, m.toTier, m.logins],
  );
  return toRow(r.rows[0]);
}

/** Moves a row to another phase (inside the transaction of the step that made it true). */
export async function setPhase(
  admin: Client,
  id: number,
  phase: MovePhase,
  detail: string | null = null,
): Promise<void> {
  await admin.query(
    `UPDATE ${JOURNAL_TABLE} SET phase = $2, detail = $3, updated_at = pg_catalog.now(),
       closed_at = CASE WHEN $2 = 'closed' THEN pg_catalog.now() ELSE closed_at END
     WHERE id = $1`,
    [id, phase, detail],
  );
}

/** Runs `fn` in one transaction on `client`. */
export async function inTransaction<T>(client: Client, fn: () => Promise<T>): Promise<T> {
  await client.query("BEGIN");
  try {
    const result = await fn();
    await client.query("COMMIT");
    return result;
  } catch (e) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw e;
  }
}
