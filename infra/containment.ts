import type { ServerConfig } from "./config";
import { quoteIdent } from "./sql";

/**
 * The containment model: what no tenant login may use or see because the cluster shares it, as
 * pure data, and the superuser SQL that puts it in place. Data isolation (infra/model.ts) keeps
 * tenants out of each other's databases; containment keeps one tenant from stopping, stalling,
 * starving or watching the others through what every database of a cluster shares: the lock
 * table, connection slots, temp space and the shared catalogs. The program, the cluster
 * bootstrap (tools/cluster.ts), the policy pack and the audit read this module; docs/containment.md
 * explains each item and its measured refusal or bound.
 *
 * Function and catalog ACLs of pg_catalog are per database and copied by CREATE DATABASE: the
 * template SQL below runs once in the template (and in every existing tenant database) as the
 * bootstrap superuser, and every tenant database cloned from it inherits the revokes. Each
 * revoke is granted back to the provisioning role, which the provider, the audit and the dump
 * tools run as.
 */

/** Session and transaction advisory locks: one session can fill the shared lock table with them. */
export const ADVISORY_LOCK_FUNCTIONS = [
  "pg_advisory_lock",
  "pg_advisory_lock_shared",
  "pg_advisory_xact_lock",
  "pg_advisory_xact_lock_shared",
  "pg_try_advisory_lock",
  "pg_try_advisory_lock_shared",
  "pg_try_advisory_xact_lock",
  "pg_try_advisory_xact_lock_shared",
] as const;

/** Everything that creates, writes or removes a large object (server-side import/export are superuser-only). */
export const LARGE_OBJECT_WRITE_FUNCTIONS = [
  "lo_create",
  "lo_creat",
  "lo_from_bytea",
  "lo_put",
  "lowrite",
  "lo_truncate",
  "lo_truncate64",
  "lo_unlink",
] as const;

/**
 * Functions that read cluster-wide state: other databases' activity and counters, locks, WAL
 * positions, transaction ids, the control file. With them a tenant learns when its neighbours
 * are online and how busy they are. `pg_stat_get_*` are matched by CLUSTER_STATS_PATTERN too.
 */
export const CLUSTER_STATE_FUNCTIONS = [
  "pg_lock_status",
  "pg_blocking_pids",
  "pg_safe_snapshot_blocking_pids",
  "pg_current_wal_lsn",
  "pg_current_wal_insert_lsn",
  "pg_current_wal_flush_lsn",
  "txid_current",
  "txid_current_if_assigned",
  "txid_current_snapshot",
  "txid_status",
  "pg_current_xact_id",
  "pg_current_xact_id_if_assigned",
  "pg_current_snapshot",
  "pg_xact_status",
  "pg_xact_commit_timestamp",
  "pg_xact_commit_timestamp_origin",
  "pg_last_committed_xact",
  "pg_control_checkpoint",
  "pg_control_system",
  "pg_control_init",
  "pg_control_recovery",
  "pg_tablespace_size",
  "pg_tablespace_databases",
  "has_database_privilege",
  "pg_identify_object",
  "pg_identify_object_as_address",
  "pg_describe_object",
  "pg_get_replication_slots",
] as const;

/**
 * `pg_stat_get_*` functions revoked: every one except the per-relation ones (one oid argument,
 * not `_db_` or `_subscription`), which pg_stat_user_tables needs and which only see the
 * session's own database.
 */
export const CLUSTER_STATS_PATTERN = {
  like: "pg_stat_get\\_%",
  keepOneOidArgument: true,
  revokeAnyway: ["pg_stat_get\\_db\\_%", "pg_stat_get\\_subscription%"],
} as const;

/** Shared catalogs and cluster-wide views: who the other customers are, their plan and activity. */
export const CLUSTER_RELATIONS = [
  "pg_database",
  "pg_roles",
  "pg_user",
  "pg_group",
  "pg_auth_members",
  "pg_db_role_setting",
  "pg_shdescription",
  "pg_shdepend",
  "pg_shseclabel",
  "pg_replication_origin",
  "pg_locks",
  "pg_prepared_xacts",
  "pg_replication_slots",
  "pg_stat_activity",
  "pg_stat_database",
  "pg_stat_database_conflicts",
  "pg_stat_wal",
  "pg_stat_bgwriter",
  "pg_stat_checkpointer",
  "pg_stat_io",
  "pg_stat_slru",
  "pg_stat_archiver",
  "pg_stat_ssl",
  "pg_stat_gssapi",
  "pg_stat_replication",
  "pg_stat_replication_slots",
  "pg_stat_subscription",
  "pg_stat_subscription_stats",
  "pg_stat_wal_receiver",
  "pg_stat_recovery_prefetch",
] as const;

/** `pg_stat_progress_*` views: other sessions' running maintenance. */
export const CLUSTER_RELATIONS_PATTERN = "pg_stat_progress\\_%";

/**
 * Columns of pg_roles given back to PUBLIC: psql's `\d <table>` and `\dp` join them. Role names
 * stay enumerable through regrole in any case (docs/containment.md, "what remains visible").
 */
export const PUBLIC_ROLE_COLUMNS = ["oid", "rolname"] as const;

/** The schema of pg-tenants' own functions in every tenant database, owned by the superuser. */
export const CONTAINMENT_SCHEMA = "pgtenants";

/**
 * A template with the containment and nothing else: restores go into a clone of it, so a
 * restored database is contained like every other (template0 would drop the revokes, and
 * pg_restore, run as the provisioning role, cannot put pg_catalog ACLs back).
 */
export const EMPTY_TEMPLATE = "pgtenants_empty";

/** Advisory locks one session may hold through the capability's functions. */
export const ADVISORY_LOCK_CAP = 64;

/**
 * What a tier may give its logins back, each through a cluster role the logins are members of.
 * Advisory locks only through capped wrappers in the `pgtenants` schema, never the raw functions;
 * large objects to the rw login only (ro is read-only).
 */
export const CAPABILITIES = {
  advisoryLocks: {
    role: "pgtenants_advisory_locks",
    logins: ["rw", "ro"],
  },
  largeObjects: {
    role: "pgtenants_large_objects",
    logins: ["rw"],
  },
} as const;

export type Capability = keyof typeof CAPABILITIES;
export const CAPABILITY_NAMES = Object.keys(CAPABILITIES) as Capability[];

/** True for the cluster role of a capability (never a tenant's own role). */
export function isCapabilityRole(name: string): boolean {
  return CAPABILITY_NAMES.some((c) => CAPABILITIES[c].role === name);
}

/** The capped advisory-lock wrappers: name, the raw function it calls, and its return type. */
export const ADVISORY_LOCK_WRAPPERS = [
  { name: "advisory_lock", calls: "pg_advisory_lock", returns: "void" },
  { name: "advisory_lock_shared", calls: "pg_advisory_lock_shared", returns: "void" },
  { name: "try_advisory_lock", calls: "pg_try_advisory_lock", returns: "boolean" },
  { name: "advisory_xact_lock", calls: "pg_advisory_xact_lock", returns: "void" },
  { name: "try_advisory_xact_lock", calls: "pg_try_advisory_xact_lock", returns: "boolean" },
] as const;

/** Role settings of the provisioning role, stored by the bootstrap superuser. */
export function provisionerSettings(): Record<string, string> {
  return {
    // A tenant's lock (on its own table, or an advisory key the provider also takes) makes the
    // provider's statement fail after this, not wait for ever; the provider's own
    // `SET statement_timeout = 0` leaves it in force. The provider also queues on its own
    // advisory locks (every database it creates locks the provisioning role, a member of each
    // owner): ten new tenants in one run on a loaded machine waited over 10 s for those, so the
    // bound is generous. Day-two tools set a shorter one per session.
    lock_timeout: "2min",
    // Dumps read every large object a tenant owns; the check is off for this role only.
    lo_compat_privileges: "on",
    // The cluster-wide session limits below are for tenants: the provider pools its sessions and
    // dumps and index builds may need more temp space than a tenant query.
    idle_session_timeout: "0",
    idle_in_transaction_session_timeout: "0",
    temp_file_limit: "-1",
  };
}

/** Server settings of a cluster (start options of embedded clusters; the audit reads them live). */
export function serverSettings(server: ServerConfig, pgMajor: number): Record<string, string> {
  return {
    max_connections: String(server.maxConnections),
    superuser_reserved_connections: String(server.superuserReservedConnections),
    ...(pgMajor >= 16 ? { reserved_connections: String(server.reservedConnections) } : {}),
    authentication_timeout: `${server.authenticationTimeoutS}s`,
    temp_file_limit: `${server.tempFileLimitMb}MB`,
    idle_session_timeout: `${server.idleSessionTimeoutMs}ms`,
    idle_in_transaction_session_timeout: `${server.idleInTransactionSessionTimeoutMs}ms`,
  };
}

/** Cluster-level SQL, run by the superuser in the maintenance database before the template. */
export function clusterContainmentSql(provisioner: string, pgMajor: number): string[] {
  const p = quoteIdent(provisioner);
  const sql: string[] = [];
  for (const { role } of Object.values(CAPABILITIES)) {
    const r = quoteIdent(role);
    sql.push(
      `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${role}') THEN CREATE ROLE ${r} NOLOGIN; END IF; END $$`,
      // The provider revokes and grants a login's memberships on every update: it needs ADMIN.
      `GRANT ${r} TO ${p} WITH ADMIN OPTION`,
    );
  }
  sql.push(`GRANT pg_signal_backend, pg_read_all_stats TO ${p}`);
  if (pgMajor >= 16) sql.push(`GRANT pg_use_reserved_connections TO ${p}`);
  for (const [name, value] of Object.entries(provisionerSettings())) {
    sql.push(`ALTER ROLE ${p} SET ${name} = '${value}'`);
  }
  return sql;
}

const list = (names: readonly string[]) => names.map((n) => `'${n}'`).join(", ");

/**
 * Template-level SQL (also for every existing tenant database), run by the superuser in that
 * database: the revokes, the grants back to the provisioning role and the capability roles, and
 * the capped advisory-lock wrappers. Idempotent.
 */
export function databaseContainmentSql(provisioner: string): string[] {
  const p = quoteIdent(provisioner);
  const schema = quoteIdent(CONTAINMENT_SCHEMA);
  const advisory = quoteIdent(CAPABILITIES.advisoryLocks.role);
  const hiddenFunctions = `p.pronamespace = 'pg_catalog'::regnamespace AND (
      p.proname IN (${list([...ADVISORY_LOCK_FUNCTIONS, ...LARGE_OBJECT_WRITE_FUNCTIONS, ...CLUSTER_STATE_FUNCTIONS])})
      OR (p.proname LIKE '${CLUSTER_STATS_PATTERN.like}'
          AND NOT (p.pronargs = 1 AND p.proargtypes[0] = 'oid'::regtype
                   ${CLUSTER_STATS_PATTERN.revokeAnyway.map((l) => `AND p.proname NOT LIKE '${l}'`).join(" ")})))`;
  const hiddenRelations = `c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind IN ('r', 'v')
      AND (c.relname IN (${list(CLUSTER_RELATIONS)}) OR c.relname LIKE '${CLUSTER_RELATIONS_PATTERN}')`;
  const wrappers = ADVISORY_LOCK_WRAPPERS.map(
    (w) => `CREATE OR REPLACE FUNCTION ${schema}.${w.name}(key bigint) RETURNS ${w.returns}
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $f$
BEGIN
  IF (SELECT count(*) FROM pg_catalog.pg_locks
      WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid()) >= ${ADVISORY_LOCK_CAP} THEN
    RAISE EXCEPTION 'this session holds % advisory locks, the most a tenant session may', ${ADVISORY_LOCK_CAP}
      USING ERRCODE = '53400';
  END IF;
  ${w.returns === "void" ? `PERFORM pg_catalog.${w.calls}(key); RETURN;` : `RETURN pg_catalog.${w.calls}(key);`}
END $f$`,
  );
  return [
    `DO $contain$
DECLARE f regprocedure; r regclass;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p WHERE ${hiddenFunctions} LOOP
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, ${`'${provisioner}'`});
  END LOOP;
  FOR r IN SELECT c.oid::regclass FROM pg_class c WHERE ${hiddenRelations} LOOP
    EXECUTE format('REVOKE SELECT ON %s FROM PUBLIC', r);
    EXECUTE format('GRANT SELECT ON %s TO %I', r, ${`'${provisioner}'`});
  END LOOP;
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
           WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname IN (${list(LARGE_OBJECT_WRITE_FUNCTIONS)}) LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, ${`'${CAPABILITIES.largeObjects.role}'`});
  END LOOP;
END $contain$`,
    `GRANT SELECT (${PUBLIC_ROLE_COLUMNS.join(", ")}) ON pg_catalog.pg_roles TO PUBLIC`,
    `CREATE SCHEMA IF NOT EXISTS ${schema}`,
    `REVOKE ALL ON SCHEMA ${schema} FROM PUBLIC`,
    `GRANT USAGE ON SCHEMA ${schema} TO ${advisory}, ${p}`,
    ...wrappers,
    `REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ${schema} FROM PUBLIC`,
    `GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ${schema} TO ${advisory}`,
  ];
}
