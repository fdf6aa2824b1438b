import type {
  PolicyConfigSchema,
  PolicyResource,
  ResourceValidationArgs,
  StackValidationArgs,
} from "@pulumi/policy";
import { TENANT_TAG } from "../infra/model";
import { NAME_PREFIX_PATTERN, parseTenantName, tenantIdOfLogicalName } from "../infra/naming";

/**
 * What every policy of the pack shares: the type tokens it inspects, how a resource's tenant is
 * found, and config with defaults. Pure: no import of a provider SDK, so the pack, the offline
 * check and the tests load it alike. Tenant identity comes from the project's own naming rules
 * (infra/naming.ts, infra/model.ts), never from a second copy of them.
 */

/** Type tokens as the engine reports them. */
export const TYPES = {
  provider: "pulumi:providers:postgresql",
  role: "postgresql:index/role:Role",
  grantRole: "postgresql:index/grantRole:GrantRole",
  database: "postgresql:index/database:Database",
  grant: "postgresql:index/grant:Grant",
  defaultPrivileges: "postgresql:index/defaultPrivileges:DefaultPrivileges",
  extension: "postgresql:index/extension:Extension",
  kmsKey: "aws:kms/key:Key",
  kmsAlias: "aws:kms/alias:Alias",
  kmsCiphertext: "aws:kms/ciphertext:Ciphertext",
  secret: "aws:secretsmanager/secret:Secret",
  secretVersion: "aws:secretsmanager/secretVersion:SecretVersion",
  randomPassword: "random:index/randomPassword:RandomPassword",
  randomBytes: "random:index/randomBytes:RandomBytes",
} as const;

/** Types that only ever exist for one tenant; each must sit inside its tenant's component. */
export const TENANT_SCOPED_TYPES: readonly string[] = [
  TYPES.role,
  TYPES.grantRole,
  TYPES.database,
  TYPES.grant,
  TYPES.defaultPrivileges,
  TYPES.extension,
  TYPES.kmsKey,
  TYPES.kmsAlias,
  TYPES.kmsCiphertext,
  TYPES.secret,
  TYPES.secretVersion,
  TYPES.randomPassword,
  TYPES.randomBytes,
];

/** The component types of infra/components: `pg-tenants:index:Tenant`, `...TenantPlacement`, ... */
export const TENANT_COMPONENT_PREFIX = "pg-tenants:index:Tenant";

export { TENANT_TAG };

/** The part of a resource tenancy is read from. */
export interface Located {
  name: string;
  urn: string;
}

/**
 * The tenant a resource belongs to, or undefined. A resource belongs to tenant `acme` when it is
 * declared inside one of the tenant components (its URN's type chain names one) and its logical
 * name derives from the id (`acme`, `acme@standard-db`, `acme-key-kms`; see infra/naming.ts).
 */
export function tenantOf(resource: Located): string | undefined {
  const qualifiedType = resource.urn.split("::")[2] ?? "";
  const inTenant = qualifiedType
    .split("$")
    .slice(0, -1)
    .some((t) => t.startsWith(TENANT_COMPONENT_PREFIX));
  return inTenant ? tenantIdOfLogicalName(resource.name) : undefined;
}

/** The stack name a URN belongs to (`urn:pulumi:<stack>::<project>::...`). */
export function stackOf(urn: string): string {
  return urn.split("::")[0].split(":").slice(2).join(":");
}

/** The tenant whose name (role or database) this is, under the stack's prefix. */
export function tenantOfName(prefix: string, name: unknown): string | undefined {
  return typeof name === "string" ? parseTenantName(prefix, name)?.id : undefined;
}

/** Config every policy that reads PostgreSQL names takes. */
export const NAME_PREFIX_SCHEMA: PolicyConfigSchema["properties"] = {
  namePrefix: {
    type: "string",
    pattern: NAME_PREFIX_PATTERN.source,
    default: "tenant_",
    description:
      "The stacks' pg-tenants:namePrefix: tenant names are <namePrefix><id>[_owner|_rw|_ro].",
  },
};

/**
 * The policy's config with the schema's defaults filled in, so a policy behaves the same whether
 * the engine supplied defaults, a config file supplied some keys, or a test supplied none.
 */
export function configOf<T extends object>(
  args: Pick<ResourceValidationArgs | StackValidationArgs, "getConfig">,
  schema: PolicyConfigSchema,
): T {
  const defaults: Record<string, unknown> = {};
  for (const [key, prop] of Object.entries(schema.properties)) {
    if (prop.default !== undefined) defaults[key] = prop.default;
  }
  return { ...defaults, ...(args.getConfig<T>() ?? {}) } as T;
}

/** True when a boolean-valued input is set to true (providers' config arrives as strings). */
export function isTrue(value: unknown): boolean {
  return value === true || value === "true";
}

/** The string values anywhere inside `value`, with their dotted paths; unknown values are skipped. */
export function stringsIn(value: unknown, path = ""): { path: string; value: string }[] {
  if (typeof value === "string") return [{ path, value }];
  if (value === null || typeof value !== "object") return [];
  const out: { path: string; value: string }[] = [];
  for (const key of Object.keys(value)) {
    let child: unknown;
    try {
      child = (value as Record<string, unknown>)[key];
    } catch {
      // During preview a value that is not known yet throws on access: nothing to check there.
      continue;
    }
    out.push(...stringsIn(child, path === "" ? key : `${path}.${key}`));
  }
  return out;
}

/** Reads a property that may not be known during preview; undefined when it is not. */
export function known(read: () => unknown): unknown {
  try {
    return read();
  } catch {
    return undefined;
  }
}

/** False when reading a property throws: the engine's proxy does so for values unknown during preview. */
export function isKnown(read: () => unknown): boolean {
  try {
    read();
    return true;
  } catch {
    return false;
  }
}

/** The resources a property of `resource` depends on, of the given types. */
export function dependenciesOf(
  resource: PolicyResource,
  properties: readonly string[],
  types: readonly string[],
): PolicyResource[] {
  return properties
    .flatMap((p) => resource.propertyDependencies?.[p] ?? [])
    .filter((d) => types.includes(d.type));
}

/** The tenant a KMS key serves: its tenant tag, else its place in the program. */
export function keyTenant(key: PolicyResource): string | undefined {
  const tags = known(() => key.props.tags) as Record<string, unknown> | undefined;
  const tagged = tags?.[TENANT_TAG];
  return typeof tagged === "string" ? tagged : tenantOf(key);
}
