import type { Client } from "pg";
import { CONTAINMENT_SCHEMA } from "../../infra/containment";
import { HISTORY_SCHEMA } from "../../infra/templates";
import { compareStats, tableStats, TableStats } from "./tables";

/**
 * Everything a tenant database holds beyond its schema, as a backup records it and a move or a
 * restore verifies it: each table's rows (count and content checksum, tools/lib/tables.ts), each
 * sequence's value, and the large objects (count, owners, and a checksum over oid, owner and
 * content). The schemas of pg-tenants itself (the containment's, the migration history) are
 * each database's own and never compared.
 */

export interface SequenceValue {
  /** `schema.sequence`. */
  sequence: string;
  lastValue: string;
  isCalled: boolean;
}

export interface LargeObjectStats {
  count: number;
  /** Owner role -> number of large objects it owns. */
  owners: Record<string, number>;
  /** Sum of the first 64 bits of md5(oid:owner:md5(content)), as a decimal. */
  checksum: string;
}

export interface DatabaseContents {
  tables: TableStats[];
  sequences: SequenceValue[];
  largeObjects: LargeObjectStats;
}

/** Schemas that belong to pg-tenants in every tenant database, never to the tenant's data. */
export const OWN_SCHEMAS = [CONTAINMENT_SCHEMA, HISTORY_SCHEMA] as const;

/** The user sequences: outside the system schemas and pg-tenants' own, not an extension's. */
export async function userSequences(client: Client): Promise<{ schema: string; name: string }[]> {
  const r = await client.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'S'
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
       AND n.nspname <> ALL($1::text[])
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
     ORDER BY 1, 2`,
    [OWN_SCHEMAS],
  );
  return r.rows;
}

/** Every user sequence's state, on the connection's current snapshot. */
export async function sequenceValues(client: Client): Promise<SequenceValue[]> {
  const out: SequenceValue[] = [];
  for (const s of await userSequences(client)) {
    const sql = await client.query<{ sql: string }>(
      "SELECT format('SELECT last_value::text AS v, is_called AS c FROM %I.%I', $1::text, $2::text) AS sql",
      [s.schema, s.name],
    );
    const r = await client.query<{ v: string; c: boolean }>(sql.rows[0].sql);
    out.push({ sequence: `${s.schema}.${s.name}`, lastValue: r.rows[0].v, isCalled: r.rows[0].c });
  }
  return out;
}

/**
 * Count, owners and checksum of the database's large objects. Reading another role's large
 * object needs `lo_compat_privileges`, which the bootstrap sets for the provisioning role only.
 */
export async function largeObjectStats(client: Client): Promise<LargeObjectStats> {
  const r = await client.query<{ owner: string; n: number; sum: string }>(
    `SELECT pg_get_userbyid(m.lomowner)::text AS owner, count(*)::int AS n,
            sum(('x' || substr(md5(m.oid::text || ':' || pg_get_userbyid(m.lomowner)::text || ':' || md5(lo_get(m.oid))), 1, 16))::bit(64)::bigint::numeric)::text AS sum
     FROM pg_largeobject_metadata m GROUP BY 1 ORDER BY 1`,
  );
  let total = 0n;
  for (const row of r.rows) total += BigInt(row.sum);
  return {
    count: r.rows.reduce((n, row) => n + row.n, 0),
    owners: Object.fromEntries(r.rows.map((row) => [row.owner, row.n])),
    checksum: total.toString(),
  };
}

/** Tables, sequences and large objects, on the connection's current snapshot. */
export async function databaseContents(client: Client): Promise<DatabaseContents> {
  return {
    tables: await tableStats(client),
    sequences: await sequenceValues(client),
    largeObjects: await largeObjectStats(client),
  };
}

/** The rows, sequences and large objects a contents record sums up to, for one line of output. */
export function describeContents(c: Partial<DatabaseContents> & { tables: TableStats[] }): string {
  const rows = c.tables.reduce((n, t) => n + t.rows, 0);
  const parts = [`${c.tables.length} table(s), ${rows} row(s)`];
  if (c.sequences !== undefined) parts.push(`${c.sequences.length} sequence(s)`);
  if (c.largeObjects !== undefined) parts.push(`${c.largeObjects.count} large object(s)`);
  return parts.join(", ");
}

/**
 * Differences between what was expected and what `where` holds, one sentence each. Sequences and
 * large objects are compared when the expectation records them (manifests written before they
 * were recorded have only tables).
 */
export function compareContents(
  expected: Partial<DatabaseContents> & { tables: TableStats[] },
  actual: DatabaseContents,
  where: string,
): string[] {
  const problems = compareStats(expected.tables, actual.tables, where);
  if (expected.sequences !== undefined) {
    const byName = new Map(actual.sequences.map((s) => [s.sequence, s]));
    for (const e of expected.sequences) {
      const a = byName.get(e.sequence);
      if (a === undefined) problems.push(`sequence ${e.sequence} is missing in ${where}`);
      else if (a.lastValue !== e.lastValue || a.isCalled !== e.isCalled)
        problems.push(
          `sequence ${e.sequence} is at ${a.lastValue}${a.isCalled ? "" : " (not called)"} in ${where}, expected ${e.lastValue}${e.isCalled ? "" : " (not called)"}`,
        );
    }
  }
  if (expected.largeObjects !== undefined) {
    const e = expected.largeObjects;
    const a = actual.largeObjects;
    if (a.count !== e.count) {
      problems.push(`${a.count} large object(s) in ${where}, expected ${e.count}`);
    } else if (JSON.stringify(a.owners) !== JSON.stringify(e.owners)) {
      problems.push(
        `the large objects in ${where} belong to ${ownersText(a.owners)}, expected ${ownersText(e.owners)}`,
      );
    } else if (a.checksum !== e.checksum) {
      problems.push(`the ${a.count} large object(s) in ${where} differ in content`);
    }
  }
  return problems;
}

const ownersText = (owners: Record<string, number>) =>
  Object.entries(owners)
    .map(([o, n]) => `${o} (${n})`)
    .join(", ") || "nobody";
