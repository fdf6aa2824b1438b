import { CONTAINMENT_SCHEMA, EMPTY_TEMPLATE } from "./containment";
import { CONTAINMENT_INVARIANTS } from "./containmentAudit";
import { HISTORY_SCHEMA, parseTemplate, templateName } from "./templates";
import type { StackConfig } from "./config";
import {
  CLUSTER_PRIVILEGES,
  ClusterFlag,
  FleetModel,
  GrantSpec,
  RoleSpec,
  TenantModel,
  tenantsOnTier,
  PUBLIC_GRANTEE,
} from "./model";
import { catalogGrantee } from "./modelSql";
import { RESTORE_INFIX } from "./naming";

/**
 * The live isolation audit, as a pure function: a read-only snapshot of each cluster's catalog
 * (tools/lib/catalog.ts takes it) compared with the isolation model (infra/model.ts). Every
 * expectation comes from the model; nothing here restates who may do what.
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

export type Severity = "violation" | "notice";

/** Stable names of the invariants, as reports and tests refer to them. */
export const INVARIANTS = {
  databaseExists: "database-exists",
  databaseOwner: "database-owner",
  databaseAllowConnections: "database-allow-connections",
  publicNoConnect: "public-no-connect-or-temp",
  connectOnlyGroup: "connect-only-for-group",
  databasePrivileges: "database-privileges",
  roleExists: "role-exists",
  roleAttributes: "role-attributes",
  roleLogin: "role-login",
  connectionLimit: "connection-limit",
  statementTimeout: "statement-timeout",
  membership: "membership",
  extension: "extension",
  objectPrivileges: "object-privileges",
  unexpectedSchema: "unexpected-schema",
  databaseReadable: "database-readable",
  hba: "pg-hba",
  hbaReadable: "pg-hba-readable",
  noTenantSuperuser: "no-tenant-cluster-privileges",
  maintenancePublicConnect: "maintenance-db-no-public-connect",
  templateClosed: "template-accepts-no-connections",
  orphanDatabase: "orphan-database",
  orphanRole: "orphan-role",
  retained: "retained-database",
  /** Template versions besides the stack's (tools/lib/migrations/templates.ts). */
  templateVersion: "template-version",
  /** A tenant's schema against its template's at the same version (migrate --check). */
  schemaDrift: "schema-drift",
  /** A tenant's migration history: owned by the provisioning role, no grants, files unchanged. */
  migrationHistory: "migration-history",
  /** A tenant behind the stack's template version: migrate has not reached it yet. */
  migrationPending: "migration-pending",
  /** What tenants share: infra/containmentAudit.ts. */
  ...CONTAINMENT_INVARIANTS,
} as const;
export type Invariant = (typeof INVARIANTS)[keyof typeof INVARIANTS];

export interface Finding {
  severity: Severity;
  tier: string;
  /** The tenant concerned; absent for cluster-wide findings. */
  tenant?: string;
  invariant: Invariant;
  message: string;
}

/** The catalog flags of the model's forbidden cluster privileges (`rolsuper` read as `superuser`, ...). */
const CLUSTER_FLAGS = CLUSTER_PRIVILEGES.map((p) => p.keyword.toLowerCase() as ClusterFlag);
const MAINTENANCE_DATABASES = ["postgres", "template1"];
const ALWAYS_PRESENT_DATABASES = ["postgres", "template0", "template1"];
/** The schema every database starts with; the template keeps it, closed to CREATE. */
const DEFAULT_SCHEMA = "public";

/** Lookups into one snapshot, built once: the audit of 1,000 tenants must not scan lists per role. */
interface SnapshotIndex {
  roles: Map<string, RoleRow>;
  databases: Map<string, DatabaseRow>;
  /** member -> the roles it belongs to. */
  memberOf: Map<string, string[]>;
  /** role -> its members. */
  members: Map<string, string[]>;
}

const indexes = new WeakMap<ClusterSnapshot, SnapshotIndex>();

function indexOf(snap: ClusterSnapshot): SnapshotIndex {
  let idx = indexes.get(snap);
  if (idx === undefined) {
    const push = (m: Map<string, string[]>, k: string, v: string) =>
      m.set(k, [...(m.get(k) ?? []), v]);
    const memberOf = new Map<string, string[]>();
    const members = new Map<string, string[]>();
    for (const m of snap.memberships) {
      push(memberOf, m.member, m.role);
      push(members, m.role, m.member);
    }
    idx = {
      roles: new Map(snap.roles.map((r) => [r.name, r])),
      databases: new Map(snap.databases.map((d) => [d.name, d])),
      memberOf,
      members,
    };
    indexes.set(snap, idx);
  }
  return idx;
}

/**
 * Compares every cluster's snapshot with the fleet model. Findings are sorted by tier, tenant,
 * invariant; a violation makes the audit fail, a notice is reported only.
 */
export function auditFleet(
  cfg: StackConfig,
  fleet: FleetModel,
  snapshots: readonly ClusterSnapshot[],
): Finding[] {
  const findings: Finding[] = [];
  for (const snap of snapshots) {
    // Snapshots may have changed since an earlier audit of them (tests tamper with them).
    indexes.delete(snap);
    const expected = tenantsOnTier(fleet, snap.tier);
    const provisioner = cfg.clusters[snap.tier].username;
    for (const model of expected) findings.push(...auditTenant(model, snap, provisioner));
    findings.push(...auditCluster(cfg, fleet, snap, expected));
  }
  return findings.sort(
    (a, b) =>
      a.tier.localeCompare(b.tier) ||
      (a.tenant ?? "").localeCompare(b.tenant ?? "") ||
      a.invariant.localeCompare(b.invariant) ||
      a.message.localeCompare(b.message),
  );
}

/** The invariants of one tenant on one cluster. */
export function auditTenant(
  model: TenantModel,
  snap: ClusterSnapshot,
  provisioner: string,
): Finding[] {
  const out: Finding[] = [];
  const violation = (invariant: Invariant, message: string) =>
    out.push({ severity: "violation", tier: snap.tier, tenant: model.id, invariant, message });
  const notice = (invariant: Invariant, message: string) =>
    out.push({ severity: "notice", tier: snap.tier, tenant: model.id, invariant, message });

  const idx = indexOf(snap);
  const roles = idx.roles;
  const tenantRoleNames = new Set(model.roles.map((r) => r.name));

  // Roles: existence, attributes, login, limits, settings, memberships both ways.
  for (const spec of model.roles) {
    const row = roles.get(spec.name);
    if (row === undefined) {
      violation(INVARIANTS.roleExists, `role ${spec.name} does not exist on cluster ${snap.tier}`);
      continue;
    }
    const held = CLUSTER_FLAGS.filter((p) => row[p]);
    if (held.length > 0) {
      violation(
        INVARIANTS.roleAttributes,
        `role ${spec.name} has cluster privileges: ${held.join(", ")}`,
      );
    }
    if (row.login !== spec.login) {
      violation(
        INVARIANTS.roleLogin,
        `role ${spec.name} is ${row.login ? "LOGIN" : "NOLOGIN"}, expected ${spec.login ? "LOGIN" : "NOLOGIN"}${model.state === "offboarded" ? " (tenant offboarded)" : ""}`,
      );
    }
    if (row.connectionLimit !== spec.connectionLimit) {
      violation(
        INVARIANTS.connectionLimit,
        `role ${spec.name} has connection limit ${row.connectionLimit}, expected ${spec.connectionLimit}`,
      );
    }
    out.push(...statementTimeoutFindings(spec, row, snap.tier, model.id));
    out.push(...membershipFindings(model, spec, snap, provisioner, tenantRoleNames));
  }

  // The database: existence, owner, connections, limit, ACL.
  const db = idx.databases.get(model.database.name);
  if (db === undefined) {
    violation(
      INVARIANTS.databaseExists,
      `database ${model.database.name} does not exist on cluster ${snap.tier}`,
    );
  } else {
    if (db.owner !== model.database.owner) {
      violation(
        INVARIANTS.databaseOwner,
        `database ${db.name} is owned by ${db.owner}, expected ${model.database.owner}`,
      );
    }
    // Even an offboarded tenant's database allows connections: it is closed by its grants, so
    // that its in-database resources stay readable by the provider.
    if (!db.allowConnections) {
      violation(
        INVARIANTS.databaseAllowConnections,
        `database ${db.name} has ALLOW_CONNECTIONS false`,
      );
    }
    if (db.connectionLimit !== model.database.connectionLimit) {
      violation(
        INVARIANTS.connectionLimit,
        `database ${db.name} has connection limit ${db.connectionLimit}, expected ${model.database.connectionLimit}`,
      );
    }
    out.push(...databaseAclFindings(model, db, snap.tier));
  }

  // Inside the database: extensions and privileges on the app schemas' objects.
  const contents = snap.contents[model.database.name];
  if (db !== undefined && db.allowConnections && contents === undefined) {
    notice(INVARIANTS.databaseReadable, `database ${model.database.name} was not inspected`);
  } else if (contents !== undefined && "error" in contents) {
    violation(
      INVARIANTS.databaseReadable,
      `database ${model.database.name} cannot be inspected: ${contents.error}`,
    );
  } else if (contents !== undefined) {
    for (const ext of model.extensions) {
      if (!contents.extensions.includes(ext)) {
        violation(
          INVARIANTS.extension,
          `extension ${ext} is missing in database ${model.database.name}`,
        );
      }
    }
    out.push(...objectPrivilegeFindings(model, contents, snap.tier));
    out.push(...schemaFindings(model, contents, snap.tier));
  }

  if (snap.hba !== "unreadable") out.push(...hbaTenantFindings(model, snap.hba, snap.tier));
  return out;
}

function statementTimeoutFindings(
  spec: RoleSpec,
  row: RoleRow,
  tier: string,
  tenant: string,
): Finding[] {
  const setting = row.config.find((c) => c.startsWith("statement_timeout="));
  const actual = setting?.slice("statement_timeout=".length);
  const expected =
    spec.statementTimeoutMs === undefined ? undefined : String(spec.statementTimeoutMs);
  if (actual === expected) return [];
  return [
    {
      severity: "violation",
      tier,
      tenant,
      invariant: INVARIANTS.statementTimeout,
      message: `role ${spec.name} has statement_timeout ${actual ?? "unset"}, expected ${expected ?? "unset"}`,
    },
  ];
}

function membershipFindings(
  model: TenantModel,
  spec: RoleSpec,
  snap: ClusterSnapshot,
  provisioner: string,
  tenantRoleNames: ReadonlySet<string>,
): Finding[] {
  const out: Finding[] = [];
  const finding = (message: string) =>
    out.push({
      severity: "violation",
      tier: snap.tier,
      tenant: model.id,
      invariant: INVARIANTS.membership,
      message,
    });

  const idx = indexOf(snap);
  const memberOf = idx.memberOf.get(spec.name) ?? [];
  for (const group of memberOf.filter((g) => !spec.memberOf.includes(g)).sort()) {
    const whose = tenantRoleNames.has(group) ? "" : ", a role outside this tenant";
    finding(`role ${spec.name} is a member of ${group}${whose}`);
  }
  for (const group of spec.memberOf.filter((g) => !memberOf.includes(g))) {
    finding(`role ${spec.name} is not a member of ${group}`);
  }

  // Who belongs to this role: the tenant's own roles the model makes members, and the
  // provisioning role, which creates and administers every tenant role.
  const allowedMembers = new Set([
    ...model.roles.filter((r) => r.memberOf.includes(spec.name)).map((r) => r.name),
    provisioner,
  ]);
  const members = idx.members.get(spec.name) ?? [];
  for (const member of members.filter((m) => !allowedMembers.has(m)).sort()) {
    finding(`role ${member} is a member of ${spec.name}`);
  }
  return out;
}

/**
 * Nobody but the owner holds more on the database than the model grants it (PUBLIC: the
 * `public-revoke` grant), and the model's grantees hold what it grants.
 */
function databaseAclFindings(model: TenantModel, db: DatabaseRow, tier: string): Finding[] {
  const out: Finding[] = [];
  const finding = (invariant: Invariant, message: string) =>
    out.push({ severity: "violation", tier, tenant: model.id, invariant, message });

  // The model's database-level grants by grantee as the ACL names it; the owner's implicit
  // privileges aside.
  const expected = new Map<string, string[]>();
  for (const g of model.grants.filter((g) => g.objectType === "database")) {
    expected.set(catalogGrantee(g.role), g.privileges);
  }
  const held = new Map<string, string[]>();
  for (const a of db.acl) {
    if (a.grantee !== db.owner) held.set(a.grantee, [...(held.get(a.grantee) ?? []), a.privilege]);
  }
  for (const grantee of [...held.keys()].sort()) {
    const allowed = expected.get(grantee) ?? [];
    const extra = [...new Set(held.get(grantee))].filter((p) => !allowed.includes(p)).sort();
    // CONNECT and TEMPORARY for PUBLIC, and CONNECT for anyone else, keep the invariant names
    // reports have always used; any other extra privilege breaks `database-privileges`.
    const isPublic = grantee === catalogGrantee(PUBLIC_GRANTEE);
    const own = extra.filter((p) => p === "CONNECT" || (isPublic && p === "TEMPORARY"));
    const rest = extra.filter((p) => !own.includes(p));
    if (own.length > 0 && isPublic) {
      finding(INVARIANTS.publicNoConnect, `PUBLIC holds ${own.join(", ")} on database ${db.name}`);
    } else if (own.length > 0) {
      finding(
        INVARIANTS.connectOnlyGroup,
        `${grantee} holds CONNECT on database ${db.name}; only ${model.names.group} may`,
      );
    }
    if (rest.length > 0) {
      finding(
        INVARIANTS.databasePrivileges,
        `${grantee} holds ${rest.join(", ")} on database ${db.name}; the model grants it ${allowed.length > 0 ? allowed.join(", ") : "nothing"}`,
      );
    }
  }
  for (const [role, privileges] of expected) {
    const missing = privileges.filter((p) => !(held.get(role) ?? []).includes(p));
    if (missing.length > 0) {
      finding(
        INVARIANTS.connectOnlyGroup,
        `${role} lacks ${missing.join(", ")} on database ${db.name}`,
      );
    }
  }
  return out;
}

/** Objects belong to pg_database_owner (the template's rule) or to the tenant's owner role. */
function objectOwners(model: TenantModel): ReadonlySet<string> {
  return new Set(["pg_database_owner", model.names.owner]);
}

/** Privileges on schemas, tables and sequences of the app schemas, exactly as the model grants. */
function objectPrivilegeFindings(
  model: TenantModel,
  contents: DatabaseContents,
  tier: string,
): Finding[] {
  const out: Finding[] = [];
  const finding = (message: string) =>
    out.push({
      severity: "violation",
      tier,
      tenant: model.id,
      invariant: INVARIANTS.objectPrivileges,
      message,
    });

  const owners = objectOwners(model);
  const grantsOf = (kind: ObjectAcl["kind"], schema: string): GrantSpec[] =>
    model.grants.filter((g) => g.objectType === kind && g.schema === schema);

  const objects = new Map<string, ObjectAcl[]>();
  for (const entry of contents.objects) {
    const key = `${entry.kind}\u0000${entry.schema}\u0000${entry.name}`;
    objects.set(key, [...(objects.get(key) ?? []), entry]);
  }
  for (const entries of objects.values()) {
    const { kind, schema, name } = entries[0];
    const label = kind === "schema" ? `schema ${schema}` : `${kind} ${schema}.${name}`;
    const expected = grantsOf(kind, schema);
    const grantees = [...new Set(entries.map((e) => e.grantee))]
      .filter((g) => !owners.has(g))
      .sort();
    for (const grantee of grantees) {
      const held = entries
        .filter((e) => e.grantee === grantee)
        .map((e) => e.privilege)
        .sort();
      const want = [...(expected.find((g) => g.role === grantee)?.privileges ?? [])].sort();
      const extra = held.filter((p) => !want.includes(p));
      if (extra.length > 0) finding(`${grantee} holds ${extra.join(", ")} on ${label}`);
    }
    for (const g of expected) {
      const held = entries.filter((e) => e.grantee === g.role).map((e) => e.privilege);
      const missing = g.privileges.filter((p) => !held.includes(p));
      if (missing.length > 0) finding(`${g.role} lacks ${missing.join(", ")} on ${label}`);
    }
  }
  for (const schema of new Set(
    model.grants.filter((g) => g.objectType === "schema").map((g) => g.schema),
  )) {
    if (
      schema !== undefined &&
      !contents.objects.some((o) => o.kind === "schema" && o.schema === schema)
    ) {
      finding(`schema ${schema} is missing in database ${model.database.name}`);
    }
  }
  return out;
}

/**
 * The database has the app schemas and `public` only, and nobody but the owner may create in
 * `public` (the app schemas' privileges are compared exactly by objectPrivilegeFindings).
 */
function schemaFindings(model: TenantModel, contents: DatabaseContents, tier: string): Finding[] {
  const out: Finding[] = [];
  const finding = (invariant: Invariant, message: string) =>
    out.push({ severity: "violation", tier, tenant: model.id, invariant, message });
  const appSchemas = new Set(
    model.grants.filter((g) => g.objectType === "schema").map((g) => g.schema),
  );
  const owners = objectOwners(model);
  for (const schema of [...contents.schemas].sort((a, b) => a.name.localeCompare(b.name))) {
    if (schema.name === DEFAULT_SCHEMA) {
      const creators = schema.creators.filter((r) => !owners.has(r)).sort();
      for (const role of creators) {
        finding(INVARIANTS.objectPrivileges, `${role} holds CREATE on schema ${schema.name}`);
      }
    } else if (
      !appSchemas.has(schema.name) &&
      schema.name !== CONTAINMENT_SCHEMA &&
      schema.name !== HISTORY_SCHEMA
    ) {
      // pgtenants holds the containment's own functions (infra/containment.ts), from the template;
      // pgtenants_history the migration history (its owner and grants: the migration-history check).
      finding(
        INVARIANTS.unexpectedSchema,
        `schema ${schema.name} in database ${model.database.name} is not an app schema (${[...appSchemas].join(", ")})`,
      );
    }
  }
  return out;
}

/** Only the tenant's group is admitted to its database, and nobody once it is offboarded. */
function hbaTenantFindings(model: TenantModel, rules: readonly HbaRule[], tier: string): Finding[] {
  const out: Finding[] = [];
  const finding = (message: string) =>
    out.push({ severity: "violation", tier, tenant: model.id, invariant: INVARIANTS.hba, message });
  const admitting = rules.filter(
    (r) => r.error === null && r.method !== "reject" && r.databases.includes(model.database.name),
  );
  const groupRule = `+${model.names.group}`;
  for (const rule of admitting) {
    const others = rule.users.filter((u) => u !== groupRule);
    if (others.length > 0)
      finding(
        `pg_hba line ${rule.line} admits ${others.join(", ")} to database ${model.database.name}`,
      );
  }
  if (model.database.open) {
    if (!admitting.some((r) => r.users.includes(groupRule))) {
      finding(`no pg_hba line admits ${groupRule} to database ${model.database.name}`);
    }
  } else if (admitting.length > 0) {
    finding(
      `pg_hba lines ${admitting.map((r) => r.line).join(", ")} still admit connections to offboarded database ${model.database.name}`,
    );
  }
  return out;
}

/** Cluster-wide invariants and what no manifest entry explains. */
export function auditCluster(
  cfg: StackConfig,
  fleet: FleetModel,
  snap: ClusterSnapshot,
  expected: readonly TenantModel[],
): Finding[] {
  const out: Finding[] = [];
  const push = (severity: Severity, invariant: Invariant, message: string, tenant?: string) =>
    out.push({
      severity,
      tier: snap.tier,
      invariant,
      message,
      ...(tenant !== undefined ? { tenant } : {}),
    });
  const cluster = cfg.clusters[snap.tier];

  // No role named like a tenant's holds a cluster privilege, known tenant or not.
  const expectedRoles = new Set(expected.flatMap((m) => m.roles.map((r) => r.name)));
  for (const role of snap.roles.filter((r) => r.name.startsWith(cfg.namePrefix))) {
    const held = CLUSTER_FLAGS.filter((p) => role[p]);
    if (held.length > 0 && !expectedRoles.has(role.name)) {
      push(
        "violation",
        INVARIANTS.noTenantSuperuser,
        `role ${role.name} has cluster privileges: ${held.join(", ")}`,
      );
    }
  }

  for (const name of MAINTENANCE_DATABASES) {
    const db = snap.databases.find((d) => d.name === name);
    const held = db?.acl.filter((a) => a.grantee === "PUBLIC" && a.privilege === "CONNECT") ?? [];
    if (held.length > 0)
      push(
        "violation",
        INVARIANTS.maintenancePublicConnect,
        `PUBLIC may connect to database ${name}`,
      );
  }

  const template = snap.databases.find((d) => d.name === cfg.template);
  if (template === undefined) {
    push(
      "violation",
      INVARIANTS.templateClosed,
      `template database ${cfg.template} does not exist`,
    );
  } else {
    if (template.allowConnections)
      push("violation", INVARIANTS.templateClosed, `template ${cfg.template} accepts connections`);
    if (!template.isTemplate)
      push(
        "violation",
        INVARIANTS.templateClosed,
        `database ${cfg.template} is not marked IS_TEMPLATE`,
      );
  }

  // Other versions of the stack's template: kept until no stack names them, never open.
  const versions = otherTemplateVersions(cfg.template, snap.databases);
  for (const db of versions) {
    const v = parseTemplate(db.name)!.version;
    const current = parseTemplate(cfg.template)!.version;
    push(
      "notice",
      INVARIANTS.templateVersion,
      v < current
        ? `template ${db.name} is superseded by ${cfg.template}: drop it once no stack names it`
        : `template ${db.name} is newer than this stack's ${cfg.template} (another stack names it, or migrate built it ahead)`,
    );
    if (db.allowConnections || !db.isTemplate)
      push(
        "violation",
        INVARIANTS.templateClosed,
        `template ${db.name} ${db.allowConnections ? "accepts connections" : "is not marked IS_TEMPLATE"}`,
      );
  }

  // Orphans. A database of a tenant placed on another tier, closed to connections, is the
  // retained source of a completed move; a restore database awaits a swap: both are notices.
  const expectedIds = new Set(expected.map((m) => m.id));
  const elsewhere = new Map(
    fleet.tenants.filter((m) => !expectedIds.has(m.id)).map((m) => [m.names.database, m]),
  );
  const known = new Set([
    ...ALWAYS_PRESENT_DATABASES,
    cfg.template,
    ...versions.map((d) => d.name),
    EMPTY_TEMPLATE,
    cluster.database,
    ...expected.map((m) => m.database.name),
  ]);
  const byDatabase = new Map(expected.map((m) => [m.database.name, m]));
  for (const db of snap.databases) {
    if (known.has(db.name)) continue;
    const moved = elsewhere.get(db.name);
    const restoreOf = restoreBase(db.name);
    const restoreTenant = restoreOf === undefined ? undefined : byDatabase.get(restoreOf);
    if (moved !== undefined && !db.allowConnections) {
      push(
        "notice",
        INVARIANTS.retained,
        `database ${db.name} is retained here (connections disallowed) after the tenant moved to ${moved.tier}; remove it when no longer needed`,
        moved.id,
      );
    } else if (restoreTenant !== undefined) {
      push(
        "notice",
        INVARIANTS.retained,
        `restore database ${db.name} awaits a swap or removal`,
        restoreTenant.id,
      );
    } else {
      push(
        "violation",
        INVARIANTS.orphanDatabase,
        `database ${db.name} is not explained by any tenant of the manifest`,
      );
    }
  }

  const retainedTenants = new Set(
    snap.databases
      .filter((d) => elsewhere.has(d.name) && !d.allowConnections)
      .map((d) => elsewhere.get(d.name)!.id),
  );
  const retainedRoles = new Map<string, string>();
  for (const m of fleet.tenants.filter((t) => retainedTenants.has(t.id))) {
    for (const r of m.roles) retainedRoles.set(r.name, m.id);
  }
  for (const role of snap.roles.filter(
    (r) => r.name.startsWith(cfg.namePrefix) && !expectedRoles.has(r.name),
  )) {
    const owner = retainedRoles.get(role.name);
    if (owner !== undefined && !role.login) continue;
    push(
      "violation",
      INVARIANTS.orphanRole,
      `role ${role.name} is not explained by any tenant of the manifest`,
    );
  }

  if (snap.hba === "unreadable") {
    push(
      "notice",
      INVARIANTS.hbaReadable,
      `pg_hba_file_rules is not readable by ${cluster.username}; pg_hba rules not checked (CONNECT privileges carry the isolation alone where pg_hba is not managed)`,
    );
  } else {
    const admins = new Set([cluster.username, ...cfg.hba.adminUsers]);
    for (const rule of snap.hba) {
      if (rule.error !== null) {
        push("violation", INVARIANTS.hba, `pg_hba line ${rule.line} does not parse: ${rule.error}`);
        continue;
      }
      if (rule.method === "reject" || !rule.databases.includes("all")) continue;
      const open = rule.users.filter((u) => !admins.has(u));
      if (open.length > 0) {
        push(
          "violation",
          INVARIANTS.hba,
          `pg_hba line ${rule.line} admits ${open.join(", ")} to all databases`,
        );
      }
    }
  }
  return out;
}

/** The databases that are other versions of the stack's template (`<family>_v<N>`). */
function otherTemplateVersions(template: string, databases: readonly DatabaseRow[]): DatabaseRow[] {
  const own = parseTemplate(template);
  if (own === undefined) return [];
  return databases.filter((d) => {
    const v = parseTemplate(d.name);
    return (
      v !== undefined &&
      v.family === own.family &&
      d.name !== template &&
      d.name === templateName(v.family, v.version)
    );
  });
}

/** `tenant_acme` for `tenant_acme_restore_20261126064500`, else undefined. */
function restoreBase(name: string): string | undefined {
  const m = new RegExp(`^(.+)${RESTORE_INFIX}\\d{14}$`).exec(name);
  return m?.[1];
}

export interface AuditReport {
  stack: string;
  tenants: number;
  clusters: string[];
  findings: Finding[];
  violations: number;
  notices: number;
  /** Wall time of the audit in milliseconds. */
  elapsedMs: number;
}

export function summarize(
  stack: string,
  tenants: number,
  clusters: string[],
  findings: Finding[],
  elapsedMs: number,
): AuditReport {
  return {
    stack,
    tenants,
    clusters,
    findings,
    violations: findings.filter((f) => f.severity === "violation").length,
    notices: findings.filter((f) => f.severity === "notice").length,
    elapsedMs,
  };
}

export type AuditFormat = "text" | "json" | "markdown";
export const AUDIT_FORMATS: readonly AuditFormat[] = ["text", "json", "markdown"];

/** Renders a report for people (text, markdown) or machines (json). */
export function renderReport(report: AuditReport, format: AuditFormat): string {
  const head = `audit of stack ${report.stack}: ${report.tenants} tenant(s) on ${report.clusters.length} cluster(s) (${report.clusters.join(", ")})`;
  const tail = `${report.violations} violation(s), ${report.notices} notice(s)`;
  switch (format) {
    case "json":
      return JSON.stringify(report, null, 2);
    case "markdown": {
      const lines = [`## ${head}`, ""];
      if (report.findings.length === 0) {
        lines.push("Every invariant holds.");
      } else {
        lines.push(
          "| severity | cluster | tenant | invariant | finding |",
          "|---|---|---|---|---|",
        );
        for (const f of report.findings) {
          lines.push(
            `| ${f.severity} | ${f.tier} | ${f.tenant ?? ""} | ${f.invariant} | ${f.message.replace(/\|/g, "\\|")} |`,
          );
        }
      }
      lines.push("", `**${tail}**`);
      return lines.join("\n");
    }
    case "text": {
      const lines = [head];
      for (const f of report.findings) {
        lines.push(
          `${f.severity.toUpperCase().padEnd(9)} ${f.tier} ${f.tenant ?? "(cluster)"} ${f.invariant}: ${f.message}`,
        );
      }
      lines.push(report.violations === 0 ? `OK: ${tail}` : `FAILED: ${tail}`);
      return lines.join("\n");
    }
  }
}
