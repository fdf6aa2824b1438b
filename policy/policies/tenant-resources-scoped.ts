import type {
  PolicyConfigSchema,
  ResourceValidationArgs,
  ResourceValidationPolicy,
} from "@pulumi/policy";
import { PUBLIC_GRANTEE } from "../../infra/model";
import { tenantNames } from "../../infra/naming";
import {
  configOf,
  isKnown,
  known,
  NAME_PREFIX_SCHEMA,
  stringsIn,
  TENANT_SCOPED_TYPES,
  TENANT_TAG,
  tenantOf,
  tenantOfName,
  TYPES,
} from "../tenancy";

const configSchema: PolicyConfigSchema = { properties: { ...NAME_PREFIX_SCHEMA } };

interface Config {
  namePrefix: string;
}

/** The input that says whose a resource is, per type; the generic scan skips it. */
const IDENTITY_INPUT: Record<string, string> = {
  [TYPES.role]: "name",
  [TYPES.database]: "name",
  [TYPES.grant]: "database",
  [TYPES.defaultPrivileges]: "database",
  [TYPES.extension]: "database",
  [TYPES.grantRole]: "grantRole",
};

/** The input that says whose a resource is, for types without an identity name input. */
const IDENTITY_TAGGED: Record<string, string> = {
  [TYPES.kmsKey]: "tags",
  [TYPES.secret]: "tags",
  [TYPES.kmsAlias]: "name",
  [TYPES.kmsCiphertext]: "context",
};

/** Inputs that hold secrets: never scanned, so that no message can quote one. */
const SECRET_INPUTS = new Set(["password", "passwordWo", "plaintext", "secretString"]);

/**
 * Each tenant resource belongs to exactly one tenant, visibly: it is declared inside its
 * tenant's component with a logical name derived from the id, it carries the tenant's name or
 * tag, and none of its inputs names another tenant's database or roles.
 */
export const tenantResourcesScoped: ResourceValidationPolicy = {
  name: "tenant-resources-scoped",
  description:
    "Every tenant resource sits in its tenant's component, carries its tenant's name or tag, and references no other tenant.",
  enforcementLevel: "mandatory",
  configSchema,
  validateResource: (args, reportViolation) => {
    if (!TENANT_SCOPED_TYPES.includes(args.type)) return;
    const tenant = tenantOf(args);
    if (tenant === undefined) {
      reportViolation(
        `${args.type} ${args.name} must be declared inside a tenant's component (pg-tenants:index:Tenant) with a name derived from the tenant id.`,
      );
      return;
    }
    const { namePrefix } = configOf<Config>(args, configSchema);
    const names = tenantNames(namePrefix, tenant);
    const label = `${args.type} ${args.name} of tenant ${tenant}`;

    for (const message of identityViolations(args, tenant, names, namePrefix))
      reportViolation(`${label} ${message}`);

    const identity = IDENTITY_INPUT[args.type];
    for (const { path, value } of stringsIn(args.props)) {
      if (path === identity || SECRET_INPUTS.has(path.split(".")[0])) continue;
      const other = tenantOfName(namePrefix, value);
      if (other !== undefined && other !== tenant) {
        reportViolation(
          `${label} must not reference ${value} (${path}), a name of tenant ${other}.`,
        );
      }
    }
  },
};

/** What the resource's identity input or tag must say for it to be the tenant's. */
function identityViolations(
  args: ResourceValidationArgs,
  tenant: string,
  names: ReturnType<typeof tenantNames>,
  namePrefix: string,
): string[] {
  const props = args.props;
  const identity = IDENTITY_INPUT[args.type] ?? IDENTITY_TAGGED[args.type];
  // An identity not known yet (during preview) cannot be judged; the update checks it.
  if (identity !== undefined && !isKnown(() => props[identity])) return [];
  const value = (key: string) => known(() => props[key]);
  const roles = [names.group, names.owner, names.rw, names.ro];
  switch (args.type) {
    case TYPES.role:
      return roles.includes(String(value("name")))
        ? []
        : [`must be one of its tenant's roles (${roles.join(", ")}), not ${value("name")}.`];
    case TYPES.grantRole:
      return roles.includes(String(value("grantRole")))
        ? []
        : [
            `must grant one of its tenant's roles (${roles.join(", ")}), not ${value("grantRole")}.`,
          ];
    case TYPES.database:
      return value("name") === names.database
        ? []
        : [`must be named ${names.database}, not ${value("name")}.`];
    case TYPES.grant:
    case TYPES.defaultPrivileges: {
      const found =
        value("database") === names.database
          ? []
          : [`must be on its tenant's database ${names.database}, not ${value("database")}.`];
      // The grantee must be the tenant's own (or PUBLIC, whose grants no-public-grants judges):
      // a grant to any other role would open the database beyond the tenant. Another tenant's
      // role is already reported as a reference below.
      const grantee = String(value("role"));
      const foreign =
        grantee !== PUBLIC_GRANTEE &&
        !roles.includes(grantee) &&
        tenantOfName(namePrefix, grantee) === undefined;
      if (isKnown(() => props.role) && foreign) {
        found.push(
          `must grant to one of its tenant's roles (${roles.join(", ")}), not ${grantee}.`,
        );
      }
      return found;
    }
    case TYPES.extension:
      return value("database") === names.database
        ? []
        : [`must be on its tenant's database ${names.database}, not ${value("database")}.`];
    case TYPES.kmsKey:
    case TYPES.secret: {
      const tags = value("tags") as Record<string, unknown> | undefined;
      const tagged = tags?.[TENANT_TAG];
      return tagged === tenant
        ? []
        : [`must carry the tag ${TENANT_TAG}=${tenant} (has ${tagged ?? "none"}).`];
    }
    case TYPES.kmsAlias: {
      const name = String(value("name"));
      return name.endsWith(`/${tenant}`)
        ? []
        : [`must be named alias/<prefix>/${tenant}, not ${name}.`];
    }
    case TYPES.kmsCiphertext: {
      // The encryption context of infra/model.ts: { tenant: <id> }.
      const context = value("context") as Record<string, unknown> | undefined;
      return context?.tenant === tenant
        ? []
        : [
            `must bind the encryption context tenant=${tenant} (has ${JSON.stringify(context ?? {})}).`,
          ];
    }
    default:
      return [];
  }
}
