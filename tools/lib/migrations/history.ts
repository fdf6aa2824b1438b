import type { Client } from "pg";
import { HISTORY_SCHEMA } from "../../../infra/templates";
import { digestOf, Migration } from "./files";

/**
 * Each tenant database keeps its own migration history in schema `pgtenants_history`, created
 * and owned by the provisioning role with no grant to anyone: the tenant's owner, rw and ro roles
 * can neither read nor change it (they hold no USAGE on the schema), and nothing they leave
 * behind (a SECURITY DEFINER function, a trigger) can reach it. Not `pgtenants`: that schema is
 * the containment's (infra/containment.ts), readable by the logins' capability role.
 */
export { HISTORY_SCHEMA };
/** node-pg-migrate's table, with columns of ours filled by defaults inside its INSERT. */
export const HISTORY_TABLE = "migrations";

/**
 * The history tables. `migrations` is node-pg-migrate's (id, name, run_on) plus the file's
 * checksum, the database it was applied in (a template's name: it came with the clone) and the
 * role its body ran as; both come from settings the runner sets for the migration's
 * transaction. UNIQUE(name): a second concurrent apply of one migration rolls back whole.
 * `origin` holds one row: the template (and its version) this database started from.
 */
export const HISTORY_DDL = `
CREATE SCHEMA IF NOT EXISTS ${HISTORY_SCHEMA};
CREATE TABLE IF NOT EXISTS ${HISTORY_SCHEMA}.${HISTORY_TABLE} (
  id serial PRIMARY KEY,
  name varchar(255) NOT NULL UNIQUE,
  run_on timestamp NOT NULL,
  checksum text DEFAULT pg_catalog.current_setting('pgtenants.checksum', true),
  applied_in name NOT NULL DEFAULT pg_catalog.current_database(),
  applied_as name DEFAULT pg_catalog.current_setting('pgtenants.role', true)
);
CREATE TABLE IF NOT EXISTS ${HISTORY_SCHEMA}.origin (
  template name NOT NULL,
  version integer NOT NULL,
  how text NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);`;

export interface AppliedMigration {
  name: string;
  checksum: string | null;
}

export interface TenantState {
  /** null: no history yet (a database cloned from the first template before any migrate run). */
  history: AppliedMigration[] | null;
  /** The history schema's owner, null when it does not exist. */
  owner: string | null;
  /** Roles other than the owner holding any privilege on the history schema or its tables. */
  grantees: string[];
  origin: { template: string; version: number; how: string } | null;
}

const STATE_SQL = `
SELECT pg_catalog.pg_get_userbyid(n.nspowner) AS owner,
       pg_catalog.to_regclass('${HISTORY_SCHEMA}.${HISTORY_TABLE}') IS NOT NULL AS migrations,
       pg_catalog.to_regclass('${HISTORY_SCHEMA}.origin') IS NOT NULL AS origin,
       (SELECT coalesce(pg_catalog.json_agg(DISTINCT g), '[]') FROM (
          SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee) END AS g
            FROM pg_catalog.aclexplode(n.nspacl) a WHERE a.grantee <> n.nspowner
          UNION ALL
          SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee) END
            FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
           WHERE c.relnamespace = n.oid AND a.grantee <> c.relowner) x) AS grantees
  FROM (SELECT 1) one LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = '${HISTORY_SCHEMA}'`;

/** The database's history, its schema's owner and grantees, and its origin: one or two queries. */
export async function readState(c: Client): Promise<TenantState> {
  const r = await c.query<{
    owner: string | null;
    migrations: boolean;
    origin: boolean;
    grantees: string[] | null;
  }>(STATE_SQL);
  const { owner, migrations, origin, grantees } = r.rows[0];
  if (!migrations) return { history: null, owner, grantees: grantees ?? [], origin: null };
  // A second query: relations are resolved when a statement is parsed, so the history is read
  // only once it is known to exist.
  const h = await c.query<{ history: AppliedMigration[] | null; origin: TenantState["origin"] }>(`
    SELECT (SELECT pg_catalog.json_agg(pg_catalog.json_build_object('name', name, 'checksum', checksum) ORDER BY id)
              FROM ${HISTORY_SCHEMA}.${HISTORY_TABLE}) AS history,
           ${origin ? `(SELECT pg_catalog.row_to_json(o) FROM (SELECT template, version, how FROM ${HISTORY_SCHEMA}.origin LIMIT 1) o)` : "NULL"} AS origin`);
  return {
    history: h.rows[0].history ?? [],
    owner,
    grantees: grantees ?? [],
    origin: h.rows[0].origin,
  };
}

export interface TenantPlan {
  /** The version the database is at (its applied migrations, 1 when it has no history yet). */
  version: number;
  /** What brings it to the target version, in order. */
  pending: Migration[];
  /** Why this database must not be migrated (each stops it; the run reports it as refused). */
  problems: string[];
  /** No history yet: the run records 0001 as applied (the first template had it) first. */
  needsBaseline: boolean;
  /** The digest of what it has applied, as the ledger stores it. */
  digest: string;
}

/**
 * What a database needs to reach `target` (a version of `migrations`), or why it must be left
 * alone: a history schema not owned by the provisioning role or readable by anyone else, an
 * applied migration whose file changed or is gone, a history out of order, a database ahead of
 * the target.
 */
export function planTenant(
  state: TenantState,
  migrations: readonly Migration[],
  target: number,
  provisioner: string,
): TenantPlan {
  const problems: string[] = [];
  if (state.owner !== null && state.owner !== provisioner) {
    problems.push(`schema ${HISTORY_SCHEMA} is owned by ${state.owner}, not ${provisioner}`);
  }
  for (const g of state.grantees.sort()) {
    problems.push(`${g} holds a privilege on schema ${HISTORY_SCHEMA} or its tables`);
  }
  // No history: cloned from the first template before migrations were recorded, so at 0001.
  const history = state.history ?? [{ name: migrations[0].name, checksum: migrations[0].checksum }];
  history.forEach((h, i) => {
    const expected = migrations[i];
    if (expected === undefined) {
      problems.push(
        `applied migration ${h.name} has no file (the folder has ${migrations.length})`,
      );
    } else if (expected.name !== h.name) {
      problems.push(
        `history out of order: migration ${i + 1} applied is ${h.name}, the file is ${expected.name}`,
      );
    } else if (h.checksum !== null && h.checksum !== expected.checksum) {
      problems.push(
        `migration ${h.name} was edited after it was applied (its checksum differs from the file's)`,
      );
    }
  });
  const version = history.length;
  if (version > target) {
    problems.push(`at version ${version}, ahead of the stack's template (version ${target})`);
  }
  return {
    version,
    pending: problems.length > 0 ? [] : migrations.slice(version, target),
    problems,
    needsBaseline: state.history === null,
    digest: digestOf(history),
  };
}
