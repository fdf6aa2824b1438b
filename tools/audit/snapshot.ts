import type { ClusterFlag } from "../../infra/model";

/**
 * What the audit reads of a live cluster (tools/audit/catalog.ts takes it): a read-only snapshot
 * of its catalog and of each tenant database's contents, as the comparisons receive it.
 */

/** One privilege of one grantee, as `aclexplode` lists it; `PUBLIC` for the pseudo-role. */
export interface AclEntry {
  grantee: string;
  privilege: string;
}

/** A role as the audit reads it: its cluster-privilege flags (ClusterFlag) and the rest. */
export type RoleRow = Record<ClusterFlag, boolean> & {
  name: string;
  login: boolean;
  connectionLimit: number;
  /** `pg_roles.rolconfig`, e.g. `statement_timeout=30000`. */
  config: string[];
};

export interface DatabaseRow {
  name: string;
  owner: string;
  allowConnections: boolean;
  isTemplate: boolean;
  connectionLimit: number;
  /** Explicit or default ACL, exploded (the owner's implicit privileges included). */
  acl: AclEntry[];
}

/** `member` belongs to `role` (pg_auth_members). */
export interface MembershipRow {
  role: string;
  member: string;
}

/** A rule of pg_hba_file_rules. */
export interface HbaRule {
  line: number;
  type: string;
  databases: string[];
  users: string[];
  method: string | null;
  error: string | null;
}

/** A privilege on an object in one of the app schemas of a tenant database. */
export interface ObjectAcl extends AclEntry {
  kind: "schema" | "table" | "sequence";
  schema: string;
  name: string;
}

/** A schema of a tenant database and the roles holding CREATE on it (`PUBLIC` included). */
export interface SchemaRow {
  name: string;
  creators: string[];
}

/** What the audit reads inside one tenant database. */
export interface DatabaseContents {
  extensions: string[];
  /** Every schema but PostgreSQL's own (`pg_*`, `information_schema`). */
  schemas: SchemaRow[];
  objects: ObjectAcl[];
}

export interface ClusterSnapshot {
  tier: string;
  serverVersion: string;
  roles: RoleRow[];
  databases: DatabaseRow[];
  memberships: MembershipRow[];
  /** `unreadable` where the provisioning role may not read pg_hba_file_rules (not a superuser). */
  hba: HbaRule[] | "unreadable";
  /** Per tenant database inspected: its contents, or why it could not be read. */
  contents: Record<string, DatabaseContents | { error: string }>;
}
