import type { Client } from "pg";

/**
 * What `usage` reads from a cluster, as its provisioning role, from the maintenance database:
 * one `pg_stat_database` query (with `pg_database_size` when sizes are wanted) and one count of
 * sessions per database and login from `pg_stat_activity`. Nothing connects to a tenant
 * database, nothing is written, nothing is reset.
 */

/** One database's cumulative counters (since the statistics were last reset), as PostgreSQL keeps them. */
export interface DatabaseCounters {
  database: string;
  /** Sessions now (pg_stat_database.numbackends). */
  connections: number;
  xactCommit: number;
  xactRollback: number;
  blksRead: number;
  blksHit: number;
  /** Rows returned by scans (tup_returned). */
  tupReturned: number;
  tupInserted: number;
  tupUpdated: number;
  tupDeleted: number;
  tempFiles: number;
  tempBytes: number;
  deadlocks: number;
  /** Milliseconds spent executing statements (active_time, PostgreSQL 14+). */
  activeMs: number;
  /** When the counters were last reset; null: never since the cluster's statistics began. */
  statsReset: string | null;
  /** pg_database_size, when the sample reads sizes. */
  sizeBytes?: number;
}

export interface ClusterSample {
  tier: string;
  /** When the sample was taken (ms since the epoch, this machine's clock). */
  at: number;
  maxConnections: number;
  /** Client sessions on the whole cluster now, every database and role. */
  connections: number;
  /** Counters of every database but the templates, by name. */
  databases: Record<string, DatabaseCounters>;
  /** Sessions now per tenant database and login. */
  logins: Record<string, Record<string, number>>;
}

const STATS_SQL = `
SELECT d.datname AS database, s.numbackends, s.xact_commit, s.xact_rollback, s.blks_read, s.blks_hit,
       s.tup_returned, s.tup_inserted, s.tup_updated, s.tup_deleted, s.temp_files, s.temp_bytes,
       s.deadlocks, s.active_time, s.stats_reset::text AS stats_reset,
       CASE WHEN $1::boolean THEN pg_database_size(d.oid) END AS size
FROM pg_database d JOIN pg_stat_database s ON s.datid = d.oid
WHERE NOT d.datistemplate AND d.datallowconn`;

const LOGINS_SQL = `
SELECT datname, usename, count(*)::int AS n
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND datname = ANY($1::text[])
GROUP BY 1, 2`;

const CLUSTER_SQL = `
SELECT current_setting('max_connections')::int AS max_connections,
       (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend') AS connections`;

interface StatsRow {
  database: string;
  numbackends: number;
  xact_commit: string;
  xact_rollback: string;
  blks_read: string;
  blks_hit: string;
  tup_returned: string;
  tup_inserted: string;
  tup_updated: string;
  tup_deleted: string;
  temp_files: string;
  temp_bytes: string;
  deadlocks: string;
  active_time: number | null;
  stats_reset: string | null;
  size: string | null;
}

/** Sessions per tenant database and login now: cheap, polled between samples for the peak. */
export async function readLogins(
  client: Client,
  databases: readonly string[],
): Promise<Record<string, Record<string, number>>> {
  const r = await client.query<{ datname: string; usename: string; n: number }>(LOGINS_SQL, [
    databases,
  ]);
  const out: Record<string, Record<string, number>> = {};
  for (const row of r.rows) (out[row.datname] ??= {})[row.usename] = row.n;
  return out;
}

/** One sample of a cluster; `sizes` adds pg_database_size of every database (the costly part). */
export async function sampleCluster(
  client: Client,
  tier: string,
  tenantDatabases: readonly string[],
  options: { sizes: boolean },
): Promise<ClusterSample> {
  const at = Date.now();
  const stats = await client.query<StatsRow>(STATS_SQL, [options.sizes]);
  const cluster = await client.query<{ max_connections: number; connections: number }>(CLUSTER_SQL);
  const databases: Record<string, DatabaseCounters> = {};
  for (const row of stats.rows) {
    databases[row.database] = {
      database: row.database,
      connections: Number(row.numbackends),
      xactCommit: Number(row.xact_commit),
      xactRollback: Number(row.xact_rollback),
      blksRead: Number(row.blks_read),
      blksHit: Number(row.blks_hit),
      tupReturned: Number(row.tup_returned),
      tupInserted: Number(row.tup_inserted),
      tupUpdated: Number(row.tup_updated),
      tupDeleted: Number(row.tup_deleted),
      tempFiles: Number(row.temp_files),
      tempBytes: Number(row.temp_bytes),
      deadlocks: Number(row.deadlocks),
      activeMs: Number(row.active_time ?? 0),
      statsReset: row.stats_reset,
      ...(row.size !== null ? { sizeBytes: Number(row.size) } : {}),
    };
  }
  return {
    tier,
    at,
    maxConnections: cluster.rows[0].max_connections,
    connections: cluster.rows[0].connections,
    databases,
    logins: await readLogins(client, tenantDatabases),
  };
}
