import type { Client } from "pg";
import { HISTORY_SCHEMA } from "./history";

/**
 * Per cluster, in its maintenance database, schema `pgtenants_history` (created at bootstrap,
 * owned by the provisioning role; tenants cannot connect there) holds:
 *
 * - the ledger: per tenant database (by OID and name) the version and digest a run last saw it
 *   at, written right after the tenant's own COMMIT. It may lag the truth (a crash between the
 *   two), never lead it; a row counts only when the OID, the name and the digest all match, so a
 *   database dropped and re-created, restored or swapped under the same name is opened again.
 *   With it, a run with nothing pending reads one table instead of opening every database.
 * - the template snapshots: the normalised schema of each template version, built once, the
 *   reference the drift check compares tenants at that version with.
 */
export const LEDGER_SCHEMA = HISTORY_SCHEMA;

const LEDGER_DDL = `
CREATE TABLE IF NOT EXISTS ${LEDGER_SCHEMA}.tenant_versions (
  datoid oid PRIMARY KEY,
  datname name NOT NULL,
  version integer NOT NULL,
  digest text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE TABLE IF NOT EXISTS ${LEDGER_SCHEMA}.template_snapshots (
  template name PRIMARY KEY,
  version integer NOT NULL,
  digest text NOT NULL,
  snapshot text NOT NULL,
  built_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);`;

/**
 * The ledger's tables, when the schema is there and the provisioning role owns it; false
 * otherwise (a cluster bootstrapped elsewhere): the run then opens every database.
 */
export async function ensureLedger(maint: Client, provisioner: string): Promise<boolean> {
  const r = await maint.query<{ owner: string }>(
    "SELECT pg_catalog.pg_get_userbyid(nspowner) AS owner FROM pg_catalog.pg_namespace WHERE nspname = $1",
    [LEDGER_SCHEMA],
  );
  if (r.rowCount === 0 || r.rows[0].owner !== provisioner) return false;
  await maint.query(LEDGER_DDL);
  return true;
}

/** The databases whose ledger row proves them at `version` with `digest`. */
export async function ledgerCurrent(
  maint: Client,
  databases: readonly string[],
  version: number,
  digest: string,
): Promise<Set<string>> {
  const r = await maint.query<{ datname: string }>(
    `SELECT d.datname FROM pg_catalog.pg_database d
       JOIN ${LEDGER_SCHEMA}.tenant_versions l ON l.datoid = d.oid AND l.datname = d.datname
      WHERE d.datname = ANY($1) AND l.version = $2 AND l.digest = $3`,
    [databases, version, digest],
  );
  return new Set(r.rows.map((x) => x.datname));
}

/** Records what a database was just seen at (after its own commit). */
export async function ledgerWrite(
  maint: Client,
  database: string,
  version: number,
  digest: string,
): Promise<void> {
  await maint.query(
    `INSERT INTO ${LEDGER_SCHEMA}.tenant_versions (datoid, datname, version, digest)
       SELECT oid, datname, $2, $3 FROM pg_catalog.pg_database WHERE datname = $1
     ON CONFLICT (datoid) DO UPDATE SET datname = EXCLUDED.datname, version = EXCLUDED.version,
       digest = EXCLUDED.digest, updated_at = pg_catalog.now()`,
    [database, version, digest],
  );
}

export async function readTemplateSnapshot(
  maint: Client,
  template: string,
): Promise<{ version: number; snapshot: string } | undefined> {
  const r = await maint.query<{ version: number; snapshot: string }>(
    `SELECT version, snapshot FROM ${LEDGER_SCHEMA}.template_snapshots WHERE template = $1`,
    [template],
  );
  return r.rows[0];
}

export async function writeTemplateSnapshot(
  maint: Client,
  template: string,
  version: number,
  digest: string,
  snapshot: string,
): Promise<void> {
  await maint.query(
    `INSERT INTO ${LEDGER_SCHEMA}.template_snapshots (template, version, digest, snapshot)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (template) DO UPDATE SET version = EXCLUDED.version, digest = EXCLUDED.digest,
       snapshot = EXCLUDED.snapshot, built_at = pg_catalog.now()`,
    [template, version, digest, snapshot],
  );
}

/**
 * One migrate run per cluster at a time: a session advisory lock in the maintenance database,
 * which no tenant login can reach. Returns false when another run holds it.
 */
const RUN_LOCK = "pg-tenants migrate";

export async function tryRunLock(maint: Client): Promise<boolean> {
  const r = await maint.query<{ ok: boolean }>(
    "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext($1)) AS ok",
    [RUN_LOCK],
  );
  return r.rows[0].ok;
}

/** Who holds the run lock: the application and client address, for the refusal's message. */
export async function runLockHolder(maint: Client): Promise<string> {
  const r = await maint.query<{ who: string }>(
    `SELECT coalesce(a.application_name, '') || ' pid ' || l.pid || coalesce(' from ' || host(a.client_addr), '') AS who
       FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objid = (pg_catalog.hashtext($1)::bigint & 4294967295)::oid
      LIMIT 1`,
    [RUN_LOCK],
  );
  return r.rows[0]?.who ?? "another session";
}
