import type { Client } from "pg";

/**
 * A cluster's catalogs as plain, order-free data, for comparing what two deployments left
 * behind (the applier against the real provider): roles with their attributes and settings,
 * memberships with their options and grantors, databases with their ACLs and settings, and in
 * every database but the templates its schemas, tables, sequences, functions with an ACL,
 * default ACLs and extensions. OIDs never appear, names do; ACLs are exploded into
 * (grantee, privilege, grantable, grantor) rows. Passwords are compared by kind only (they are
 * random per deployment).
 */

export interface CatalogSnapshot {
  roles: Record<string, unknown>[];
  memberships: Record<string, unknown>[];
  databases: Record<string, unknown>[];
  roleSettings: Record<string, unknown>[];
  /** Per database: its schemas, relations, functions with ACLs, default ACLs, extensions. */
  inDatabase: Record<string, Record<string, Record<string, unknown>[]>>;
}

const ACL = (column: string) => `COALESCE((
  SELECT json_agg(json_build_array(e.grantee, e.privilege, e.grantable, e.grantor)
                  ORDER BY e.grantee, e.privilege, e.grantable, e.grantor)
  FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END AS grantee,
               a.privilege_type AS privilege, a.is_grantable AS grantable,
               pg_get_userbyid(a.grantor) AS grantor
        FROM aclexplode(${column}) a) e), '[]'::json)`;

async function rows(client: Client, sql: string): Promise<Record<string, unknown>[]> {
  return (await client.query<Record<string, unknown>>(sql)).rows;
}

/** What the snapshot reads on the cluster level (pg_roles, pg_auth_members, pg_database ...). */
async function clusterLevel(client: Client, withSetOption: boolean) {
  return {
    roles: await rows(
      client,
      `SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
              r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil::text AS validuntil,
              (SELECT array_agg(c ORDER BY c) FROM unnest(r.rolconfig) c) AS config,
              (SELECT split_part(a.rolpassword, '$', 1) FROM pg_authid a WHERE a.oid = r.oid)
                AS password_kind
       FROM pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY r.rolname`,
    ),
    memberships: await rows(
      client,
      `SELECT pg_get_userbyid(roleid) AS role, pg_get_userbyid(member) AS member,
              pg_get_userbyid(grantor) AS grantor, admin_option
              ${withSetOption ? ", inherit_option, set_option" : ""}
       FROM pg_auth_members
       WHERE pg_get_userbyid(roleid) !~ '^pg_'
       ORDER BY 1, 2, 3`,
    ),
    databases: await rows(
      client,
      `SELECT datname, pg_get_userbyid(datdba) AS owner, datconnlimit, datallowconn,
              datistemplate, pg_encoding_to_char(encoding) AS encoding, ${ACL("datacl")} AS acl
       FROM pg_database ORDER BY datname`,
    ),
    roleSettings: await rows(
      client,
      `SELECT COALESCE(d.datname, '*') AS database, COALESCE(pg_get_userbyid(s.setrole), '*') AS role,
              (SELECT array_agg(c ORDER BY c) FROM unnest(s.setconfig) c) AS config
       FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase
       ORDER BY 1, 2`,
    ),
  };
}

/** What the snapshot reads inside one database. */
async function databaseLevel(client: Client) {
  return {
    schemas: await rows(
      client,
      `SELECT nspname, pg_get_userbyid(nspowner) AS owner, ${ACL("nspacl")} AS acl
       FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'
       ORDER BY nspname`,
    ),
    relations: await rows(
      client,
      `SELECT n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner) AS owner,
              ${ACL("c.relacl")} AS acl
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
         AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
       ORDER BY 1, 2`,
    ),
    functions: await rows(
      client,
      `SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid) AS args,
              pg_get_userbyid(p.proowner) AS owner, ${ACL("p.proacl")} AS acl
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE p.proacl IS NOT NULL OR n.nspname NOT IN ('pg_catalog', 'information_schema')
       ORDER BY 1, 2, 3`,
    ),
    defaultAcls: await rows(
      client,
      `SELECT pg_get_userbyid(d.defaclrole) AS owner, COALESCE(n.nspname, '*') AS schema,
              d.defaclobjtype AS objtype, ${ACL("d.defaclacl")} AS acl
       FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
       ORDER BY 1, 2, 3`,
    ),
    extensions: await rows(
      client,
      `SELECT e.extname, e.extversion, n.nspname AS schema, pg_get_userbyid(e.extowner) AS owner
       FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1`,
    ),
  };
}

/**
 * Reads a cluster's snapshot. `connect(database)` opens a superuser session to a database;
 * every database that allows connections is read, templates included only for their ACLs.
 */
export async function snapshotCatalogs(
  connect: (database: string) => Promise<Client>,
): Promise<CatalogSnapshot> {
  const admin = await connect("postgres");
  let snapshot: CatalogSnapshot;
  let databases: string[];
  try {
    const version = Number(
      (await admin.query("SHOW server_version_num")).rows[0].server_version_num,
    );
    const cluster = await clusterLevel(admin, version >= 160000);
    snapshot = { ...cluster, inDatabase: {} };
    databases = (
      await admin.query<{ datname: string }>(
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname",
      )
    ).rows.map((r) => r.datname);
  } finally {
    await admin.end();
  }
  for (const database of databases) {
    const client = await connect(database);
    try {
      snapshot.inDatabase[database] = await databaseLevel(client);
    } finally {
      await client.end();
    }
  }
  return snapshot;
}
