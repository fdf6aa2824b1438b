import { CONTAINMENT_SCHEMA } from "../../infra/containment";
import { HISTORY_SCHEMA } from "../../infra/templates";
import {
  CLUSTER_PRIVILEGES,
  ClusterFlag,
  GrantSpec,
  RoleSpec,
  TenantModel,
  PUBLIC_GRANTEE,
} from "../../infra/model";
import { catalogGrantee } from "../../infra/modelSql";
import { Finding, Invariant, INVARIANTS } from "./invariants";
import {
  ClusterSnapshot,
  DatabaseContents,
  DatabaseRow,
  HbaRule,
  ObjectAcl,
  RoleRow,
} from "./snapshot";

/**
 * The invariants of one tenant on one cluster, as pure comparisons of the cluster's snapshot
 * (tools/audit/snapshot.ts) with the tenant's model: its roles, its database, what is inside the
 * database, and its pg_hba lines.
 */

/** The catalog flags of the model's forbidden cluster privileges (`rolsuper` read as `superuser`, ...). */
export const CLUSTER_FLAGS = CLUSTER_PRIVILEGES.map((p) => p.keyword.toLowerCase() as ClusterFlag);

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

/** Drops the lookups built for a snapshot: it may have changed since an earlier audit of it. */
export function forgetIndex(snap: ClusterSnapshot): void {
  indexes.delete(snap);
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
