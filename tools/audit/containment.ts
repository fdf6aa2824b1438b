import type { ServerConfig, StackConfig } from "../../infra/config";
import {
  CAPABILITIES,
  LARGE_OBJECT_WRITE_FUNCTIONS,
  provisionerSettings,
  serverSettings,
} from "../../infra/containment";
import { FleetModel, TenantModel, tenantsOnTier } from "../../infra/model";
import type { Finding, Invariant } from "./invariants";

/**
 * The audit's containment part, as pure comparisons: what the containment model
 * (infra/containment.ts) requires of a live cluster against what tools/audit/containmentCatalog.ts
 * read there. Data isolation is checked by tools/audit/tenant.ts and cluster.ts; this checks what
 * tenants share.
 */

export const CONTAINMENT_INVARIANTS = {
  /** A function or shared catalog the model revokes is usable by a tenant login. */
  containmentAcl: "containment-acl",
  /** A tenant role or database carries a setting the model does not give it. */
  roleSettings: "role-settings",
  /** A large object owned by a role that may not own one. */
  largeObjects: "large-objects",
  /** A session of an offboarded tenant's login is still open. */
  offboardedSession: "offboarded-session",
  /** A login's password is not the one its credentials hold. */
  password: "password",
  /** The server's settings differ from the stack's `server` block. */
  serverSettings: "server-settings",
  /** The live connection limits of the tenant logins exceed what the server leaves them. */
  connectionBudget: "connection-budget",
  /** The provisioning role lacks what containment gives it (lock_timeout, signalling, slots). */
  provisionerSetup: "provisioner-setup",
} as const;

/** What a tenant login may do of what containment revokes: `{fn: true}` where it may call it. */
export interface LoginPrivileges {
  login: string;
  /** Revoked function name -> whether the login may execute it (any overload). */
  functions: Record<string, boolean>;
  /** Revoked relation name -> whether the login may select from it. */
  relations: Record<string, boolean>;
}

/** What the containment audit reads in one tenant database. */
export interface ContainmentContents {
  logins: LoginPrivileges[];
  /** Owners of the database's large objects, with their counts. */
  largeObjectOwners: Record<string, number>;
}

/** A `pg_db_role_setting` row that concerns a tenant: `*` for "any role" / "every database". */
export interface RoleSettingRow {
  role: string;
  database: string;
  setting: string;
}

export interface ContainmentSnapshot {
  tier: string;
  serverMajor: number;
  /** current_setting of each setting serverSettings names, normalised to serverSettings' units. */
  settings: Record<string, string>;
  roleSettings: RoleSettingRow[];
  /** Open sessions per login role. */
  sessions: Record<string, number>;
  /** Login roles that can log in, with their connection limit. */
  loginLimits: Record<string, number>;
  provisioner: {
    settings: string[];
    memberOf: string[];
  };
  contents: Record<string, ContainmentContents | { error: string }>;
  /** Logins whose password was tried and refused (28P01); absent when not checked. */
  refusedPasswords?: string[];
  /** The session limits a new session of each login started with (read with its credentials). */
  loginSettings?: Record<string, Record<string, string>>;
}

type Push = (invariant: Invariant, message: string, tenant?: string) => void;

function finder(tier: string, out: Finding[]): Push {
  return (invariant, message, tenant) =>
    out.push({ severity: "violation", tier, ...(tenant ? { tenant } : {}), invariant, message });
}

/** The logins of a tenant that hold a capability on this tier, by capability role. */
function capabilityLogins(model: TenantModel): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const r of model.roles) {
    for (const m of r.memberOf) {
      if (Object.values(CAPABILITIES).some((c) => c.role === m)) {
        out.set(m, new Set([...(out.get(m) ?? []), r.name]));
      }
    }
  }
  return out;
}

/** The tenant databases' containment ACLs and large objects against the model. */
function contentsFindings(model: TenantModel, contents: ContainmentContents, push: Push): void {
  const capable = capabilityLogins(model);
  const largeObjectWriters = capable.get(CAPABILITIES.largeObjects.role) ?? new Set();
  for (const login of contents.logins) {
    for (const [fn, allowed] of Object.entries(login.functions)) {
      const may = largeObjectWriters.has(login.login) && isLargeObjectWrite(fn);
      if (allowed && !may) {
        push(
          CONTAINMENT_INVARIANTS.containmentAcl,
          `${login.login} may execute ${fn} in database ${model.database.name}; containment revokes it`,
          model.id,
        );
      }
    }
    for (const [rel, allowed] of Object.entries(login.relations)) {
      if (allowed) {
        push(
          CONTAINMENT_INVARIANTS.containmentAcl,
          `${login.login} may read ${rel} in database ${model.database.name}; containment revokes it`,
          model.id,
        );
      }
    }
  }
  for (const [owner, n] of Object.entries(contents.largeObjectOwners).sort()) {
    if (!largeObjectWriters.has(owner)) {
      push(
        CONTAINMENT_INVARIANTS.largeObjects,
        `${n} large object(s) in database ${model.database.name} owned by ${owner}, which may not own large objects on tier ${model.tier}`,
        model.id,
      );
    }
  }
}

function isLargeObjectWrite(fn: string): boolean {
  return (LARGE_OBJECT_WRITE_FUNCTIONS as readonly string[]).includes(fn);
}

/** The settings the model gives a role: a login's statement timeout, nothing else. */
function expectedSettings(model: TenantModel): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const r of model.roles) {
    out.set(
      r.name,
      r.statementTimeoutMs !== undefined ? [`statement_timeout=${r.statementTimeoutMs}`] : [],
    );
  }
  return out;
}

/** Compares one cluster's containment snapshot with the model of the tenants on it. */
export function containmentFindings(
  cfg: StackConfig,
  fleet: FleetModel,
  snap: ContainmentSnapshot,
): Finding[] {
  const out: Finding[] = [];
  const push = finder(snap.tier, out);
  const cluster = cfg.clusters[snap.tier];
  const tenants = tenantsOnTier(fleet, snap.tier);

  // Server settings: what the budget and the session limits rely on. The provisioning role's
  // sessions carry its own values of the session limits (provisionerSettings): those are
  // compared where a tenant login's session reads them (loginSettings, with credentials).
  const wanted = serverSettings(cluster.server, snap.serverMajor);
  const own = new Set(Object.keys(provisionerSettings()));
  for (const [name, value] of Object.entries(wanted)) {
    const live = own.has(name) ? undefined : snap.settings[name];
    if (live !== undefined && normalise(live) !== normalise(value)) {
      push(
        CONTAINMENT_INVARIANTS.serverSettings,
        `${name} is ${live} on cluster ${snap.tier}; the stack's server settings say ${value}`,
      );
    }
  }
  budgetFinding(cluster.server, snap, push);

  // The provisioning role's own setup (absent on clusters the bootstrap did not prepare).
  if (!snap.provisioner.settings.some((s) => s.startsWith("lock_timeout="))) {
    push(
      CONTAINMENT_INVARIANTS.provisionerSetup,
      `the provisioning role ${cluster.username} has no lock_timeout: a tenant's lock can stall every deploy (ALTER ROLE ${cluster.username} SET lock_timeout = '2min')`,
    );
  }
  for (const needed of [
    "pg_signal_backend",
    ...(snap.serverMajor >= 16 ? ["pg_use_reserved_connections"] : []),
  ]) {
    if (!snap.provisioner.memberOf.includes(needed)) {
      push(
        CONTAINMENT_INVARIANTS.provisionerSetup,
        `the provisioning role ${cluster.username} is not a member of ${needed} (GRANT ${needed} TO ${cluster.username})`,
      );
    }
  }

  const byRole = new Map<string, TenantModel>();
  const byDatabase = new Map<string, TenantModel>();
  for (const m of tenants) {
    for (const r of m.roles) byRole.set(r.name, m);
    byDatabase.set(m.database.name, m);
  }

  // Role and database settings: a login may lift its own defaults (ALTER ROLE CURRENT_USER SET,
  // IN DATABASE ...); the audit sees every such row.
  const expected = new Map(tenants.flatMap((m) => [...expectedSettings(m)]));
  const seen = new Map<string, string[]>();
  for (const row of snap.roleSettings) {
    const roleTenant = byRole.get(row.role);
    const dbTenant = byDatabase.get(row.database);
    if (roleTenant === undefined && dbTenant === undefined) continue;
    const tenant = (roleTenant ?? dbTenant)!;
    if (row.database === "*" && roleTenant !== undefined) {
      seen.set(row.role, [...(seen.get(row.role) ?? []), row.setting]);
      if (
        !(expected.get(row.role) ?? []).includes(row.setting) &&
        !row.setting.startsWith("statement_timeout=")
      ) {
        push(
          CONTAINMENT_INVARIANTS.roleSettings,
          `${row.role} carries the setting ${row.setting}; tenant roles carry only the model's statement_timeout`,
          tenant.id,
        );
      }
    } else {
      const where =
        row.role === "*"
          ? `every role in database ${row.database}`
          : `${row.role} in database ${row.database}`;
      push(
        CONTAINMENT_INVARIANTS.roleSettings,
        `${where} carries the setting ${row.setting} (ALTER ${row.role === "*" ? "DATABASE" : "ROLE ... IN DATABASE"} ... SET); the model sets none there`,
        tenant.id,
      );
    }
  }

  for (const [login, live] of Object.entries(snap.loginSettings ?? {}).sort()) {
    const m = byRole.get(login);
    if (m === undefined) continue;
    const spec = m.roles.find((r) => r.name === login);
    const expectedHere: Record<string, string> = {
      ...Object.fromEntries(Object.entries(wanted).filter(([n]) => own.has(n))),
      statement_timeout: `${spec?.statementTimeoutMs ?? 0}ms`,
    };
    for (const [name, value] of Object.entries(expectedHere)) {
      if (live[name] !== undefined && normalise(live[name]) !== normalise(value)) {
        push(
          CONTAINMENT_INVARIANTS.serverSettings,
          `a new session of ${login} starts with ${name} = ${live[name]}; the model gives it ${value}`,
          m.id,
        );
      }
    }
  }

  for (const m of tenants) {
    if (!m.database.open) {
      for (const r of m.roles.filter((r) => r.kind === "rw" || r.kind === "ro")) {
        const n = snap.sessions[r.name] ?? 0;
        if (n > 0) {
          push(
            CONTAINMENT_INVARIANTS.offboardedSession,
            `${n} session(s) of ${r.name} are still open though tenant ${m.id} is offboarded (npm run offboard ends them)`,
            m.id,
          );
        }
      }
    }
    const contents = snap.contents[m.database.name];
    if (contents !== undefined && !("error" in contents)) contentsFindings(m, contents, push);
    for (const login of snap.refusedPasswords ?? []) {
      if (m.roles.some((r) => r.name === login)) {
        push(
          CONTAINMENT_INVARIANTS.password,
          `${login} refused its own credentials (28P01): its password was changed outside the program (ALTER ROLE ... PASSWORD); pulumi up sets it back`,
          m.id,
        );
      }
    }
  }
  return out;
}

/** The live limits of the tenant logins against the slots the server leaves them. */
function budgetFinding(server: ServerConfig, snap: ContainmentSnapshot, push: Push): void {
  // The config's reserved slots are kept free on 15 too (by this budget); on 16+ a live value
  // that differs is reported with the server settings.
  const max = Number(snap.settings.max_connections ?? server.maxConnections);
  const su = Number(
    snap.settings.superuser_reserved_connections ?? server.superuserReservedConnections,
  );
  const slots = max - su - server.reservedConnections;
  const unlimited = Object.entries(snap.loginLimits)
    .filter(([, n]) => n < 0)
    .map(([r]) => r);
  if (unlimited.length > 0) {
    push(
      CONTAINMENT_INVARIANTS.connectionBudget,
      `login(s) without a connection limit on cluster ${snap.tier}: ${unlimited.sort().join(", ")}`,
    );
  }
  const total = Object.values(snap.loginLimits)
    .filter((n) => n >= 0)
    .reduce((a, b) => a + b, 0);
  if (total > Math.floor(slots * server.overcommit)) {
    push(
      CONTAINMENT_INVARIANTS.connectionBudget,
      `the tenant logins on cluster ${snap.tier} may hold ${total} connections together; the server leaves them ${slots} (overcommit ${server.overcommit})`,
    );
  }
}

/** `1GB` and `1024MB`, `15min` and `900000ms`, `5s` and `5000ms` compare equal. */
export function normalise(value: string): string {
  const m = /^(-?\d+)\s*(kB|MB|GB|TB|ms|s|min|h|d)?$/.exec(value.trim());
  if (m === null) return value.trim();
  const n = Number(m[1]);
  const factor: Record<string, number> = {
    kB: 1,
    MB: 1024,
    GB: 1024 ** 2,
    TB: 1024 ** 3,
    ms: 1,
    s: 1000,
    min: 60_000,
    h: 3_600_000,
    d: 86_400_000,
  };
  const unit = m[2];
  if (unit === undefined) return String(n);
  const kind = ["kB", "MB", "GB", "TB"].includes(unit) ? "kB" : "ms";
  return `${n * factor[unit]}${kind}`;
}
