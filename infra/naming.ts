/**
 * Every PostgreSQL, KMS and Pulumi name pg-tenants derives. Names are pure functions of the
 * tenant id, the stack's prefix and (for cluster-bound resources) the tier, so they are stable
 * across runs and never depend on the order or number of tenants in the manifest.
 * Renaming any logical name below later needs `aliases` on the resource.
 */

/** PostgreSQL silently truncates identifiers longer than this many bytes (NAMEDATALEN - 1). */
export const PG_MAX_IDENTIFIER_BYTES = 63;

/** A stack's name prefix (`tenant_`): tenant names are `<prefix><id>[_owner|_rw|_ro]`. */
export const NAME_PREFIX_PATTERN = /^[a-z][a-z0-9_]*_$/;

/** Tenant ids: a lowercase ASCII letter, then lowercase ASCII letters, digits or `_`. */
export const TENANT_ID_PATTERN = /^[a-z][a-z0-9_]*$/;

/** The role suffixes of the isolation model; the group role carries no suffix. */
export const ROLE_SUFFIXES = { group: "", owner: "_owner", rw: "_rw", ro: "_ro" } as const;

export type RoleKind = keyof typeof ROLE_SUFFIXES;
/** Every role kind, in the order the model lists them (group, owner, then the logins). */
export const ROLE_KINDS = Object.keys(ROLE_SUFFIXES) as RoleKind[];
/** The two logins of a tenant: the application's read-write and read-only credentials. */
export const LOGIN_KINDS = ["rw", "ro"] as const;
export type LoginKind = (typeof LOGIN_KINDS)[number];

/** True for "rw" and "ro", the login kinds; narrows a string read from outside. */
export function isLoginKind(value: unknown): value is LoginKind {
  return (LOGIN_KINDS as readonly unknown[]).includes(value);
}

/** Restore databases are `<database>_restore_<YYYYMMDDHHMMSS>`: the longest name derived from an id. */
export const RESTORE_INFIX = "_restore_";
const RESTORE_SUFFIX_LENGTH = RESTORE_INFIX.length + "YYYYMMDDHHMMSS".length;

/** The longest suffix any derived PostgreSQL identifier appends to `<prefix><id>`. */
export const LONGEST_SUFFIX_LENGTH = Math.max(
  RESTORE_SUFFIX_LENGTH,
  ...Object.values(ROLE_SUFFIXES).map((s) => s.length),
);

/** Tenant ids must not end like a derived name, or `acme_rw`'s group would be `acme`'s rw login. */
export const RESERVED_ID_ENDINGS = ["_owner", "_rw", "_ro"];

/** The longest tenant id whose every derived identifier fits in 63 bytes without truncation. */
export function maxTenantIdLength(prefix: string): number {
  return PG_MAX_IDENTIFIER_BYTES - Buffer.byteLength(prefix) - LONGEST_SUFFIX_LENGTH;
}

export interface TenantNames {
  /** The tenant's database: unique per cluster because the id is unique in the manifest. */
  database: string;
  group: string;
  owner: string;
  rw: string;
  ro: string;
}

/** PostgreSQL names of a tenant: `<prefix><id>` plus a fixed suffix per role kind. */
export function tenantNames(prefix: string, id: string): TenantNames {
  const base = `${prefix}${id}`;
  return {
    database: base,
    group: base + ROLE_SUFFIXES.group,
    owner: base + ROLE_SUFFIXES.owner,
    rw: base + ROLE_SUFFIXES.rw,
    ro: base + ROLE_SUFFIXES.ro,
  };
}

/** A restore target: the timestamp keeps parallel restores of one tenant apart. */
export function restoreDatabaseName(prefix: string, id: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:T]/g, "").slice(0, "YYYYMMDDHHMMSS".length);
  return `${prefix}${id}${RESTORE_INFIX}${stamp}`;
}

/** Logical name of a tenant's component: the id alone, unique in the manifest. */
export function tenantLogicalName(id: string): string {
  return id;
}

/**
 * Logical name of a tenant's placement on one cluster. The tier is part of it so that editing
 * `tier` alone plans a delete of the protected database (refused) instead of silently
 * re-pointing state at another cluster, and so a move can declare source and target at once.
 */
export function placementLogicalName(id: string, tier: string): string {
  return `${id}@${tier}`;
}

/** Logical name of one role of a placement: unique because the placement's name is. */
export function roleLogicalName(placement: string, kind: RoleKind): string {
  return `${placement}-role-${kind}`;
}

/** Logical name of a cluster's provider: tiers are unique keys of the stack config. */
export function clusterProviderName(tier: string): string {
  return `cluster-${tier}`;
}

/** KMS alias of a tenant's key: one alias per id under the stack's alias prefix. */
export function keyAliasName(aliasPrefix: string, id: string): string {
  return `alias/${aliasPrefix}/${id}`;
}

/** Secrets Manager name of one login's credentials: unique per id and login kind. */
export function credentialsSecretName(aliasPrefix: string, id: string, login: LoginKind): string {
  return `${aliasPrefix}/${id}/${login}`;
}

/**
 * The tenant and role kind behind a PostgreSQL role (or database) name: the inverse of
 * `tenantNames`. Unambiguous because no id ends like a role suffix (RESERVED_ID_ENDINGS);
 * undefined for a name that is no tenant's (without the prefix, or not a valid id inside).
 */
export function parseTenantName(
  prefix: string,
  name: string,
): { id: string; kind: RoleKind } | undefined {
  if (!name.startsWith(prefix)) return undefined;
  const rest = name.slice(prefix.length);
  for (const kind of ["owner", "rw", "ro"] as const) {
    const suffix = ROLE_SUFFIXES[kind];
    if (rest.endsWith(suffix) && TENANT_ID_PATTERN.test(rest.slice(0, -suffix.length))) {
      return { id: rest.slice(0, -suffix.length), kind };
    }
  }
  return TENANT_ID_PATTERN.test(rest) ? { id: rest, kind: "group" } : undefined;
}

/**
 * The tenant id a Pulumi logical name derives from: `<id>` (the tenant), `<id>@<tier>` (a
 * placement) or either followed by `-<suffix>` (their children). Ids contain neither `@` nor `-`.
 */
export function tenantIdOfLogicalName(name: string): string | undefined {
  return /^([a-z][a-z0-9_]*)(?=$|[@-])/.exec(name)?.[1];
}
