import type { Client } from "pg";
import type {
  ClusterSnapshot,
  DatabaseContents,
  DatabaseRow,
  HbaRule,
  MembershipRow,
  RoleRow,
} from "./snapshot";
import { CLUSTER_PRIVILEGES } from "../../infra/model";
import { connect, ClusterTarget, mapPool } from "../lib/pg";

/**
 * Read-only catalog queries of the audit. Cluster-wide facts come from a few queries on one
 * connection in one read-only snapshot, whatever the number of tenants; the contents of each
 * tenant database (extensions, schemas, privileges on the app schemas) need a connection to that
 * database and are read on a bounded pool.
 */

/** Each cluster privilege's catalog column, read as its lower-cased keyword (RoleRow). */
const CLUSTER_FLAG_COLUMNS = CLUSTER_PRIVILEGES.map(
  (p) => `${p.column} AS ${p.keyword.toLowerCase()}`,
).join(", ");

const ROLES_SQL = `
SELECT rolname AS name, ${CLUSTER_FLAG_COLUMNS}, rolcanlogin AS login,
       rolconnlimit AS "connectionLimit", coalesce(rolconfig, '{}') AS config
FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY rolname`;

const DATABASES_SQL = `
SELECT d.datname AS name, pg_get_userbyid(d.datdba) AS owner, d.datallowconn AS "allowConnections",
       d.datistemplate AS "isTemplate", d.datconnlimit AS "connectionLimit",
       coalesce((SELECT json_agg(json_build_object(
                   'grantee', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                   'privilege', a.privilege_type))
                 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a), '[]') AS acl
FROM pg_database d ORDER BY d.datname`;

const MEMBERSHIPS_SQL = `
SELECT pg_get_userbyid(m.roleid) AS role, pg_get_userbyid(m.member) AS member
FROM pg_auth_members m ORDER BY 1, 2`;

const HBA_SQL = `
SELECT line_number AS line, type, coalesce(database, '{}') AS databases, coalesce(user_name, '{}') AS users,
       auth_method AS method, error
FROM pg_hba_file_rules ORDER BY line_number`;

const CONTENTS_SQL = `
SELECT
  (SELECT coalesce(json_agg(extname ORDER BY extname), '[]') FROM pg_extension) AS extensions,
  (SELECT coalesce(json_agg(json_build_object('name', n.nspname, 'creators',
            (SELECT coalesce(json_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END), '[]')
             FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
             WHERE a.privilege_type = 'CREATE')) ORDER BY n.nspname), '[]')
   FROM pg_namespace n
   WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema') AS schemas,
  (SELECT coalesce(json_agg(o), '[]') FROM (
     SELECT 'schema' AS kind, n.nspname AS schema, n.nspname AS name,
            CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END AS grantee,
            a.privilege_type AS privilege
     FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
     WHERE n.nspname = ANY($1::text[])
     UNION ALL
     SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END, n.nspname, c.relname,
            CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
            a.privilege_type
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
          aclexplode(coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a
     WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  ) o) AS objects`;

/** The cluster-wide part of a snapshot, in one read-only transaction. */
export async function readClusterCatalog(
  client: Client,
  tier: string,
): Promise<Omit<ClusterSnapshot, "contents">> {
  await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  try {
    const version = await client.query<{ v: string }>(
      "SELECT current_setting('server_version') AS v",
    );
    const roles = await client.query<RoleRow>(ROLES_SQL);
    const databases = await client.query<DatabaseRow>(DATABASES_SQL);
    const memberships = await client.query<MembershipRow>(MEMBERSHIPS_SQL);
    let hba: HbaRule[] | "unreadable";
    await client.query("SAVEPOINT hba");
    try {
      hba = (await client.query<HbaRule>(HBA_SQL)).rows;
    } catch (e) {
      // 42501: only superusers (and roles granted EXECUTE on pg_hba_file_rules()) may read it.
      if ((e as { code?: string }).code !== "42501") throw e;
      await client.query("ROLLBACK TO SAVEPOINT hba");
      hba = "unreadable";
    }
    return {
      tier,
      serverVersion: version.rows[0].v,
      roles: roles.rows,
      databases: databases.rows,
      memberships: memberships.rows,
      hba,
    };
  } finally {
    await client.query("COMMIT").catch(() => undefined);
  }
}

/**
 * Extensions, schemas (and who may create in them) and app-schema privileges of one database,
 * read in a read-only transaction.
 */
export async function readDatabaseContents(
  client: Client,
  appSchemas: readonly string[],
): Promise<DatabaseContents> {
  await client.query("BEGIN READ ONLY");
  try {
    const r = await client.query<DatabaseContents>(CONTENTS_SQL, [appSchemas]);
    const { extensions, schemas, objects } = r.rows[0];
    return { extensions, schemas, objects };
  } finally {
    await client.query("COMMIT").catch(() => undefined);
  }
}

/**
 * A whole cluster's snapshot: the catalog, then the contents of the given databases (those that
 * exist and accept connections) on at most `poolSize` connections at once.
 */
export async function snapshotCluster(
  target: ClusterTarget,
  databases: readonly string[],
  appSchemas: readonly string[],
  poolSize: number,
): Promise<ClusterSnapshot> {
  const admin = await connect(target);
  let catalog: Omit<ClusterSnapshot, "contents">;
  try {
    catalog = await readClusterCatalog(admin, target.tier);
  } finally {
    await admin.end().catch(() => undefined);
  }
  const open = new Set(catalog.databases.filter((d) => d.allowConnections).map((d) => d.name));
  const toRead = databases.filter((d) => open.has(d));
  const contents: ClusterSnapshot["contents"] = {};
  await mapPool(toRead, poolSize, async (database) => {
    try {
      const client = await connect(target, database);
      try {
        contents[database] = await readDatabaseContents(client, appSchemas);
      } finally {
        await client.end().catch(() => undefined);
      }
    } catch (e) {
      contents[database] = { error: (e as Error).message };
    }
  });
  return { ...catalog, contents };
}
