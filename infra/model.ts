import type { ClusterConfig, StackConfig } from "./config";
import { CAPABILITIES, CAPABILITY_NAMES, EMPTY_TEMPLATE } from "./containment";
import { PROVISIONER_DATABASE_SESSIONS } from "./limits";
import type { Tenant, TenantState } from "./manifest";
import {
  keyAliasName,
  LoginKind,
  placementLogicalName,
  RoleKind,
  tenantLogicalName,
  TenantNames,
  tenantNames,
} from "./naming";

/**
 * The isolation model as pure data: what exists for one tenant and who may do what. The
 * components declare it, the audit checks it, the pg_hba renderer and the policies read it;
 * nothing restates these rules a second time.
 */

/** Table privileges of each login; `ALL` is never used (it diffs forever, TF #32). */
export const LOGIN_TABLE_PRIVILEGES: Record<LoginKind, readonly string[]> = {
  rw: ["DELETE", "INSERT", "SELECT", "UPDATE"],
  ro: ["SELECT"],
};
export const LOGIN_SEQUENCE_PRIVILEGES: Record<LoginKind, readonly string[]> = {
  rw: ["SELECT", "UPDATE", "USAGE"],
  ro: ["SELECT"],
};
/**
 * The grantee every role is implicitly a member of, as the model and the provider's `role`
 * input name it (SQL text and the catalog say PUBLIC: infra/modelSql.ts).
 */
export const PUBLIC_GRANTEE = "public";

/** What the group (and so both logins) holds on the database; PUBLIC holds nothing. */
export const GROUP_DATABASE_PRIVILEGES = ["CONNECT"] as const;
export const GROUP_SCHEMA_PRIVILEGES = ["USAGE"] as const;
/**
 * Cluster-wide role attributes no tenant role may hold: the `postgresql.Role` input and the SQL
 * keyword (lower-cased, the audit's catalog column). The program sets each false, the policy pack
 * forbids each, the audit reports each.
 */
export const CLUSTER_PRIVILEGES = [
  { input: "superuser", keyword: "SUPERUSER", column: "rolsuper" },
  { input: "createDatabase", keyword: "CREATEDB", column: "rolcreatedb" },
  { input: "createRole", keyword: "CREATEROLE", column: "rolcreaterole" },
  { input: "replication", keyword: "REPLICATION", column: "rolreplication" },
  { input: "bypassRowLevelSecurity", keyword: "BYPASSRLS", column: "rolbypassrls" },
] as const;

/** A cluster privilege by its lower-cased keyword, as the audit's catalog rows name it. */
export type ClusterFlag = Lowercase<(typeof CLUSTER_PRIVILEGES)[number]["keyword"]>;

/** The cluster privileges the provisioning role holds: it creates the tenants' databases and roles. */
export const PROVISIONER_PRIVILEGES: readonly (typeof CLUSTER_PRIVILEGES)[number]["input"][] = [
  "createDatabase",
  "createRole",
];

/** Extensions every tenant database has. */
export const TENANT_EXTENSIONS = ["pgcrypto"] as const;

export interface RoleSpec {
  kind: RoleKind;
  name: string;
  login: boolean;
  connectionLimit: number;
  /** Group roles this role is a member of (only ever the tenant's own group). */
  memberOf: string[];
  statementTimeoutMs?: number;
}

export type GrantObjectType = "database" | "schema" | "table" | "sequence";

export interface GrantSpec {
  /** Stable key within the tenant, part of the resource's logical name. */
  key: string;
  role: string;
  database: string;
  schema?: string;
  objectType: GrantObjectType;
  privileges: string[];
}

export interface DefaultPrivilegeSpec {
  key: string;
  role: string;
  database: string;
  /** The role whose future objects get these privileges: migrations run as it. */
  owner: string;
  schema: string;
  objectType: "table" | "sequence";
  privileges: string[];
}

export interface TenantModel {
  id: string;
  displayName: string;
  tier: string;
  state: TenantState;
  /** The day an offboarded tenant was offboarded: retention counts from it. */
  offboardedAt?: string;
  names: TenantNames;
  /** Pulumi logical names (see naming.ts). */
  logical: { tenant: string; placement: string };
  /**
   * `open` is false once the tenant is offboarded: its group loses CONNECT, its logins are
   * NOLOGIN and pg_hba has no line for it; the database itself and everything in it stay.
   */
  database: {
    name: string;
    owner: string;
    template: string;
    connectionLimit: number;
    open: boolean;
  };
  roles: RoleSpec[];
  /** In dependency order: each grant on the database runs after the one before it. */
  grants: GrantSpec[];
  defaultPrivileges: DefaultPrivilegeSpec[];
  extensions: string[];
  key: { alias: string; encryptionContext: Record<string, string> };
  /** Tags/labels every tenant resource that takes them carries. */
  tags: Record<string, string>;
  /**
   * A declared tier move: the tenant as it will be on the target tier (placement `<id>@<to>`),
   * declared beside the source placement until `npm run move` switches `tier` over.
   */
  move?: { to: string; target: TenantModel };
}

export const TENANT_TAG = "pg-tenants:tenant";

/** Builds one tenant's model from its file and the stack config. Pure and deterministic. */
export function buildTenantModel(tenant: Tenant, cfg: StackConfig): TenantModel {
  const names = tenantNames(cfg.namePrefix, tenant.id);
  const cluster: ClusterConfig = cfg.clusters[tenant.tier];
  const connectionLimit = tenant.limits?.connectionLimit ?? cluster.connectionLimit;
  const statementTimeoutMs = tenant.limits?.statementTimeoutMs ?? cluster.statementTimeoutMs;
  const db = names.database;

  const nologin = (kind: RoleKind): RoleSpec => ({
    kind,
    name: names[kind],
    login: false,
    connectionLimit: 0,
    memberOf: [],
  });
  // Offboarded tenants keep their roles (they hold the grants) but nobody logs in as them.
  // The capability roles of the tier (cluster roles, not the tenant's) this login may use.
  const capabilityRoles = (kind: LoginKind): string[] =>
    CAPABILITY_NAMES.filter(
      (c) =>
        cluster.capabilities[c] && (CAPABILITIES[c].logins as readonly LoginKind[]).includes(kind),
    ).map((c) => CAPABILITIES[c].role);
  const login = (kind: LoginKind): RoleSpec => ({
    kind,
    name: names[kind],
    login: tenant.state === "active",
    connectionLimit,
    memberOf: [names.group, ...capabilityRoles(kind)],
    // 0 means no timeout: the provider RESETs the setting rather than storing 0.
    ...(statementTimeoutMs !== undefined && statementTimeoutMs > 0 ? { statementTimeoutMs } : {}),
  });

  const grants: GrantSpec[] = [
    {
      key: "public-revoke",
      role: PUBLIC_GRANTEE,
      database: db,
      objectType: "database",
      privileges: [],
    },
    {
      key: "group-connect",
      role: names.group,
      database: db,
      objectType: "database",
      // Offboarded: the same grant with no privileges, i.e. CONNECT revoked. The database keeps
      // ALLOW_CONNECTIONS true so that the provider can still read and refresh the grants in it.
      privileges: tenant.state === "active" ? [...GROUP_DATABASE_PRIVILEGES] : [],
    },
  ];
  const defaultPrivileges: DefaultPrivilegeSpec[] = [];
  for (const schema of cfg.appSchemas) {
    grants.push({
      key: `${schema}-usage`,
      role: names.group,
      database: db,
      schema,
      objectType: "schema",
      privileges: [...GROUP_SCHEMA_PRIVILEGES],
    });
    for (const kind of ["rw", "ro"] as const) {
      grants.push(
        {
          key: `${schema}-tables-${kind}`,
          role: names[kind],
          database: db,
          schema,
          objectType: "table",
          privileges: [...LOGIN_TABLE_PRIVILEGES[kind]],
        },
        {
          key: `${schema}-sequences-${kind}`,
          role: names[kind],
          database: db,
          schema,
          objectType: "sequence",
          privileges: [...LOGIN_SEQUENCE_PRIVILEGES[kind]],
        },
      );
      defaultPrivileges.push(
        {
          key: `${schema}-tables-${kind}`,
          role: names[kind],
          database: db,
          owner: names.owner,
          schema,
          objectType: "table",
          privileges: [...LOGIN_TABLE_PRIVILEGES[kind]],
        },
        {
          key: `${schema}-sequences-${kind}`,
          role: names[kind],
          database: db,
          owner: names.owner,
          schema,
          objectType: "sequence",
          privileges: [...LOGIN_SEQUENCE_PRIVILEGES[kind]],
        },
      );
    }
  }

  return {
    id: tenant.id,
    displayName: tenant.displayName,
    tier: tenant.tier,
    state: tenant.state,
    ...(tenant.offboardedAt !== undefined ? { offboardedAt: tenant.offboardedAt } : {}),
    names,
    logical: {
      tenant: tenantLogicalName(tenant.id),
      placement: placementLogicalName(tenant.id, tenant.tier),
    },
    database: {
      name: db,
      owner: names.owner,
      template: cfg.template,
      // Both logins at their limits still leave the provisioning role its sessions inside.
      connectionLimit: 2 * connectionLimit + PROVISIONER_DATABASE_SESSIONS,
      open: tenant.state === "active",
    },
    roles: [nologin("group"), nologin("owner"), login("rw"), login("ro")],
    grants,
    defaultPrivileges,
    extensions: [...TENANT_EXTENSIONS],
    key: {
      alias: keyAliasName(cfg.keys.aliasPrefix, tenant.id),
      encryptionContext: { tenant: tenant.id },
    },
    tags: { [TENANT_TAG]: tenant.id, "pg-tenants:stack": cfg.stack },
    // The target is exactly the model the tenant has once its file says `tier: <to>`, so the
    // switch leaves the target placement's inputs unchanged.
    ...(tenant.move !== undefined
      ? {
          move: {
            to: tenant.move.to,
            target: buildTenantModel({ ...tenant, tier: tenant.move.to, move: undefined }, cfg),
          },
        }
      : {}),
  };
}

/** The fleet of a stack: every tenant's model, and the tenants of each cluster (tier). */
export interface FleetModel {
  tenants: TenantModel[];
  byTier: Record<string, TenantModel[]>;
  /** Per tier, the target models of tenants moving onto it (placed there besides their source). */
  movingIn: Record<string, TenantModel[]>;
}

export function buildFleetModel(tenants: readonly Tenant[], cfg: StackConfig): FleetModel {
  const models = tenants.map((t) => buildTenantModel(t, cfg));
  const byTier: Record<string, TenantModel[]> = Object.fromEntries(
    Object.keys(cfg.clusters).map((tier) => [tier, [] as TenantModel[]]),
  );
  const movingIn: Record<string, TenantModel[]> = Object.fromEntries(
    Object.keys(cfg.clusters).map((tier) => [tier, [] as TenantModel[]]),
  );
  for (const m of models) {
    byTier[m.tier].push(m);
    if (m.move !== undefined) movingIn[m.move.to].push(m.move.target);
  }
  return { tenants: models, byTier, movingIn };
}

/** The tenants a cluster holds: those of its tier and those moving onto it (target placements). */
export function tenantsOnTier(fleet: FleetModel, tier: string): TenantModel[] {
  return [...(fleet.byTier[tier] ?? []), ...(fleet.movingIn[tier] ?? [])];
}

/** Names of the stack that no tenant may take (see manifest validation). */
export function reservedNames(cfg: StackConfig): string[] {
  return [
    cfg.template,
    EMPTY_TEMPLATE,
    ...Object.values(cfg.clusters).flatMap((c) => [c.username, c.database]),
    ...cfg.hba.adminUsers,
  ];
}

/** The most sessions a tenant's logins can hold on its cluster: both logins' limits (0 offboarded). */
export function tenantConnections(model: TenantModel): number {
  return model.roles.filter((r) => r.login).reduce((sum, r) => sum + r.connectionLimit, 0);
}

/** A cluster's connection budget against what its tenants' limits add up to. */
export interface ClusterBudget {
  tier: string;
  /** Slots left to tenant logins: max_connections less the superuser's and the provisioning role's. */
  slots: number;
  /** Slots times the overcommit the cluster allows. */
  allowed: number;
  /** What the tenant logins on the cluster may hold together. */
  requested: number;
  tenants: Array<{ id: string; connections: number }>;
}

/**
 * Every cluster's budget (moving tenants count on both clusters: their logins exist on both).
 * Over budget, tenants could take every slot the provisioning role and the other tenants need.
 */
export function clusterBudgets(cfg: StackConfig, fleet: FleetModel): ClusterBudget[] {
  return Object.entries(cfg.clusters).map(([tier, cluster]) => {
    const { server } = cluster;
    const slots =
      server.maxConnections - server.superuserReservedConnections - server.reservedConnections;
    const tenants = tenantsOnTier(fleet, tier)
      .map((m) => ({ id: m.id, connections: tenantConnections(m) }))
      .filter((t) => t.connections > 0);
    return {
      tier,
      slots,
      allowed: Math.floor(slots * server.overcommit),
      requested: tenants.reduce((sum, t) => sum + t.connections, 0),
      tenants,
    };
  });
}
