import type { Client } from "pg";
import { HISTORY_SCHEMA } from "../../infra/templates";

/**
 * Per-table row counts and content checksums of a tenant database: what a backup records and
 * what a move or a restore verifies. Table names come from the catalog; the statements are
 * composed by the server (`format('%I')`) so no name is ever spliced into SQL text here.
 */

export interface TableStats {
  /** `schema.table`. */
  table: string;
  rows: number;
  /**
   * Sum over rows of the first and last 64 bits of md5(row::text), as two decimals: independent
   * of row order and collation, so two clusters agree exactly when they hold the same rows.
   */
  checksum: string;
}

/** Row output that is the same on every server: the text form of timestamps, floats, bytea. */
export const STABLE_OUTPUT_SETTINGS = [
  "SET TimeZone = 'UTC'",
  "SET DateStyle = 'ISO, YMD'",
  "SET IntervalStyle = 'postgres'",
  "SET extra_float_digits = 3",
  "SET bytea_output = 'hex'",
];

/**
 * Ordinary tables outside the system schemas and the migration history (each database keeps its
 * own), not belonging to an extension, sorted.
 */
export async function userTables(client: Client): Promise<{ schema: string; name: string }[]> {
  const r = await client.query<{ schema: string; name: string }>(`
    SELECT n.nspname AS schema, c.relname AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', '${HISTORY_SCHEMA}') AND n.nspname !~ '^pg_'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY 1, 2`);
  return r.rows;
}

/** Counts and checksums of every user table, on the connection's current snapshot. */
export async function tableStats(client: Client): Promise<TableStats[]> {
  for (const s of STABLE_OUTPUT_SETTINGS) await client.query(s);
  const out: TableStats[] = [];
  for (const t of await userTables(client)) {
    const sql = await client.query<{ sql: string }>(
      `SELECT format('SELECT count(*)::text AS rows,
          coalesce(sum((''x'' || substr(md5(t::text), 1, 16))::bit(64)::bigint::numeric), 0)::text || ''/'' ||
          coalesce(sum((''x'' || substr(md5(t::text), 17, 16))::bit(64)::bigint::numeric), 0)::text AS checksum
        FROM %I.%I AS t', $1::text, $2::text) AS sql`,
      [t.schema, t.name],
    );
    const r = await client.query<{ rows: string; checksum: string }>(sql.rows[0].sql);
    out.push({
      table: `${t.schema}.${t.name}`,
      rows: Number(r.rows[0].rows),
      checksum: r.rows[0].checksum,
    });
  }
  return out;
}

/** Differences between two sets of table stats, one sentence each; empty when they agree. */
export function compareStats(
  expected: readonly TableStats[],
  actual: readonly TableStats[],
  where: string,
): string[] {
  const problems: string[] = [];
  const byName = new Map(actual.map((s) => [s.table, s]));
  for (const e of expected) {
    const a = byName.get(e.table);
    if (a === undefined) {
      problems.push(`table ${e.table} is missing in ${where}`);
    } else if (a.rows !== e.rows) {
      problems.push(`table ${e.table} has ${a.rows} row(s) in ${where}, expected ${e.rows}`);
    } else if (a.checksum !== e.checksum) {
      problems.push(
        `table ${e.table} has the same ${a.rows} row count but different content in ${where}`,
      );
    }
  }
  const known = new Set(expected.map((e) => e.table));
  for (const a of actual)
    if (!known.has(a.table)) problems.push(`table ${a.table} exists only in ${where}`);
  return problems;
}
