import type { Client } from "pg";
import {
  ADVISORY_LOCK_FUNCTIONS,
  CLUSTER_RELATIONS,
  CLUSTER_STATE_FUNCTIONS,
  LARGE_OBJECT_WRITE_FUNCTIONS,
  serverSettings,
} from "../../infra/containment";
import {
  ContainmentContents,
  containmentFindings,
  ContainmentSnapshot,
  LoginPrivileges,
  RoleSettingRow,
} from "./containment";
import { buildFleetModel, TenantModel, tenantsOnTier } from "../../infra/model";
import type { CredentialsProvider } from "../../client/credentials";
import type { CommandIo, StackContext } from "../lib/cli";
import { clusterTarget, ClusterTarget, connect, mapPool } from "../lib/pg";
import type { Finding } from "./invariants";

/**
 * Reads what the containment audit compares (tools/audit/containment.ts) from each live cluster
 * as its provisioning role, in read-only transactions: server settings, every role and database
 * setting of the tenants, open sessions, the login limits, the provisioning role's own setup,
 * and in each tenant database what its logins may do of what containment revokes and who owns
 * its large objects. With credentials, each active login also authenticates with its own.
 */

/** Functions whose EXECUTE the audit checks (explicit names; the pg_stat_get family by pattern). */
const CHECKED_FUNCTIONS = [
  ...ADVISORY_LOCK_FUNCTIONS,
  ...LARGE_OBJECT_WRITE_FUNCTIONS,
  ...CLUSTER_STATE_FUNCTIONS,
];

const LOGIN_PRIVILEGES_SQL = `
SELECT r.rolname AS login,
  (SELECT coalesce(json_object_agg(f.proname, f.ok), '{}') FROM (
     SELECT p.proname, bool_or(has_function_privilege(r.oid, p.oid, 'EXECUTE')) AS ok
     FROM pg_proc p
     WHERE p.pronamespace = 'pg_catalog'::regnamespace
       AND (p.proname = ANY($2::text[]) OR p.proname LIKE 'pg_stat_get\\_db\\_%'
            OR p.proname IN ('pg_stat_get_activity', 'pg_stat_get_backend_idset'))
     GROUP BY p.proname) f) AS functions,
  (SELECT coalesce(json_object_agg(c.relname, has_table_privilege(r.oid, c.oid, 'SELECT')), '{}')
   FROM pg_class c
   WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relname = ANY($3::text[])) AS relations
FROM pg_roles r WHERE r.rolname = ANY($1::text[]) ORDER BY 1`;

const LARGE_OBJECTS_SQL = `
SELECT pg_get_userbyid(lomowner) AS owner, count(*)::int AS n
FROM pg_largeobject_metadata GROUP BY 1`;

async function readContents(client: Client, model: TenantModel): Promise<ContainmentContents> {
  await client.query("BEGIN READ ONLY");
  try {
    const logins = model.roles.filter((r) => r.kind === "rw" || r.kind === "ro").map((r) => r.name);
    const privileges = await client.query<LoginPrivileges>(LOGIN_PRIVILEGES_SQL, [
      logins,
      CHECKED_FUNCTIONS,
      CLUSTER_RELATIONS.filter((r) => r !== "pg_roles"),
    ]);
    const objects = await client.query<{ owner: string; n: number }>(LARGE_OBJECTS_SQL);
    return {
      logins: privileges.rows,
      largeObjectOwners: Object.fromEntries(objects.rows.map((r) => [r.owner, r.n])),
    };
  } finally {
    await client.query("COMMIT").catch(() => undefined);
  }
}

/** One cluster's containment snapshot. */
export async function snapshotContainment(
  target: ClusterTarget,
  ctx: StackContext,
  models: readonly TenantModel[],
  poolSize: number,
  credentials?: CredentialsProvider,
): Promise<ContainmentSnapshot> {
  const cluster = ctx.cfg.clusters[target.tier];
  const admin = await connect(target);
  let snap: Omit<ContainmentSnapshot, "contents">;
  try {
    await admin.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const major = Math.floor(
      Number((await admin.query("SHOW server_version_num")).rows[0].server_version_num) / 10000,
    );
    const names = Object.keys(serverSettings(cluster.server, major));
    const settings = await admin.query<{ name: string; value: string }>(
      "SELECT n AS name, current_setting(n) AS value FROM unnest($1::text[]) n",
      [names],
    );
    const roleNames = models.flatMap((m) => m.roles.map((r) => r.name));
    const databases = models.map((m) => m.database.name);
    const roleSettings = await admin.query<RoleSettingRow>(
      `SELECT coalesce(pg_get_userbyid(s.setrole), '*') AS role, coalesce(d.datname, '*') AS database,
              c AS setting
       FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) c
       WHERE pg_get_userbyid(s.setrole) = ANY($1::text[]) OR d.datname = ANY($2::text[])
       ORDER BY 1, 2, 3`,
      [roleNames, databases],
    );
    const sessions = await admin.query<{ role: string; n: number }>(
      `SELECT usename AS role, count(*)::int AS n FROM pg_stat_activity
       WHERE usename = ANY($1::text[]) GROUP BY 1`,
      [roleNames],
    );
    const limits = await admin.query<{ role: string; n: number }>(
      "SELECT rolname AS role, rolconnlimit AS n FROM pg_roles WHERE rolcanlogin AND rolname = ANY($1::text[])",
      [roleNames],
    );
    const provisionerSettings = await admin.query<{ setting: string }>(
      `SELECT c AS setting FROM pg_db_role_setting s, unnest(s.setconfig) c
       WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = current_user) AND s.setdatabase = 0`,
    );
    const memberOf = await admin.query<{ role: string }>(
      `SELECT pg_get_userbyid(roleid) AS role FROM pg_auth_members
       WHERE member = (SELECT oid FROM pg_roles WHERE rolname = current_user)`,
    );
    snap = {
      tier: target.tier,
      serverMajor: major,
      settings: Object.fromEntries(settings.rows.map((r) => [r.name, r.value])),
      roleSettings: roleSettings.rows,
      sessions: Object.fromEntries(sessions.rows.map((r) => [r.role, r.n])),
      loginLimits: Object.fromEntries(limits.rows.map((r) => [r.role, r.n])),
      provisioner: {
        settings: provisionerSettings.rows.map((r) => r.setting),
        memberOf: memberOf.rows.map((r) => r.role),
      },
    };
  } finally {
    await admin.query("COMMIT").catch(() => undefined);
    await admin.end().catch(() => undefined);
  }
  const contents: ContainmentSnapshot["contents"] = {};
  await mapPool(
    models.filter((m) => m.database.open),
    poolSize,
    async (m) => {
      try {
        const client = await connect(target, m.database.name);
        try {
          contents[m.database.name] = await readContents(client, m);
        } finally {
          await client.end().catch(() => undefined);
        }
      } catch (err) {
        contents[m.database.name] = { error: (err as Error).message };
      }
    },
  );
  const logins = credentials === undefined ? undefined : await loginChecks(models, credentials);
  return {
    ...snap,
    contents,
    ...(logins !== undefined
      ? { refusedPasswords: logins.refused, loginSettings: logins.settings }
      : {}),
  };
}

/** Session limits a tenant login's session is checked for (infra/containment.ts). */
const SESSION_LIMITS = [
  "temp_file_limit",
  "idle_session_timeout",
  "idle_in_transaction_session_timeout",
  "statement_timeout",
];

/**
 * Each active login authenticates with its own credentials: refused with 28P01, its password
 * was changed; let in, its session reports the limits it started with.
 */
async function loginChecks(
  models: readonly TenantModel[],
  credentials: CredentialsProvider,
): Promise<{ refused: string[]; settings: Record<string, Record<string, string>> }> {
  const { Client } = await import("pg");
  const refused: string[] = [];
  const settings: Record<string, Record<string, string>> = {};
  for (const m of models.filter((m) => m.database.open)) {
    for (const login of ["rw", "ro"] as const) {
      const c = await credentials.fetch(m.id, login);
      const client = new Client({
        host: c.host,
        port: c.port,
        user: c.user,
        password: c.password,
        database: c.database,
        connectionTimeoutMillis: 10_000,
      });
      client.on("error", () => undefined);
      try {
        await client.connect();
      } catch (err) {
        // At its connection limit (53300) a login has passed authentication: its password holds.
        if ((err as { code?: string }).code === "28P01") refused.push(c.user);
        continue;
      }
      try {
        const r = await client.query<{ name: string; value: string }>(
          "SELECT n AS name, current_setting(n) AS value FROM unnest($1::text[]) n",
          [SESSION_LIMITS],
        );
        settings[c.user] = Object.fromEntries(r.rows.map((row) => [row.name, row.value]));
      } finally {
        await client.end().catch(() => undefined);
      }
    }
  }
  return { refused, settings };
}

/** The audit's containment findings of every cluster of a stack. */
export async function auditContainment(
  ctx: StackContext,
  io: CommandIo,
  poolSize: number,
  credentials?: CredentialsProvider,
): Promise<Finding[]> {
  const fleet = buildFleetModel(ctx.tenants, ctx.cfg);
  const out: Finding[] = [];
  for (const tier of Object.keys(ctx.cfg.clusters)) {
    const models = tenantsOnTier(fleet, tier);
    const snap = await snapshotContainment(
      clusterTarget(ctx.cfg, tier, ctx.root, io.env),
      ctx,
      models,
      poolSize,
      credentials,
    );
    out.push(...containmentFindings(ctx.cfg, fleet, snap));
  }
  return out;
}
