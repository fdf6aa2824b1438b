import type { PolicyConfigSchema, ResourceValidationPolicy } from "@pulumi/policy";
import {
  GROUP_DATABASE_PRIVILEGES,
  GROUP_SCHEMA_PRIVILEGES,
  LOGIN_SEQUENCE_PRIVILEGES,
  LOGIN_TABLE_PRIVILEGES,
} from "../../infra/model";
import { parseTenantName, RoleKind, tenantNames } from "../../infra/naming";
import { configOf, isTrue, known, NAME_PREFIX_SCHEMA, TYPES } from "../tenancy";

const configSchema: PolicyConfigSchema = { properties: { ...NAME_PREFIX_SCHEMA } };

interface Config {
  namePrefix: string;
}

type ObjectType = "database" | "schema" | "table" | "sequence";

/**
 * The privileges the model gives each role kind on each kind of object (infra/model.ts). A kind
 * absent from an object type's row may hold nothing there. The group's database privileges may
 * also be none: that is how an offboarded tenant's group loses CONNECT.
 */
const MODEL: Record<ObjectType, Partial<Record<RoleKind, readonly (readonly string[])[]>>> = {
  database: { group: [GROUP_DATABASE_PRIVILEGES, []] },
  schema: { group: [GROUP_SCHEMA_PRIVILEGES] },
  table: { rw: [LOGIN_TABLE_PRIVILEGES.rw], ro: [LOGIN_TABLE_PRIVILEGES.ro] },
  sequence: { rw: [LOGIN_SEQUENCE_PRIVILEGES.rw], ro: [LOGIN_SEQUENCE_PRIVILEGES.ro] },
};
const DEFAULT_PRIVILEGE_TYPES: readonly ObjectType[] = ["table", "sequence"];
const KIND_NAMES: Record<RoleKind, string> = {
  group: "the group",
  owner: "the owner role",
  rw: "an rw login",
  ro: "an ro login",
};

const same = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().every((p, i) => p === [...b].sort()[i]);
const shown = (p: readonly string[]) => (p.length === 0 ? "nothing" : p.join(", "));
const plural = (t: string) => `${t === "database" ? "databases" : `${t}s`}`;

/**
 * A tenant's roles hold exactly what the model gives them: a widened grant (ro with INSERT, a
 * login with TRUNCATE, the group with CREATE on a schema) or a widened default privilege is how
 * one login ends up able to do more than its kind may, and no other policy reads the privileges
 * themselves. Grants cover whole schemas (no objects or columns), never carry GRANT OPTION, and
 * only the object types of the model; default privileges belong to the tenant's owner.
 */
export const tenantGrantPrivileges: ResourceValidationPolicy = {
  name: "tenant-grant-privileges",
  description:
    "Every grant and default privilege of a tenant role gives exactly the model's privileges for its role kind and object type.",
  enforcementLevel: "mandatory",
  configSchema,
  validateResource: (args, reportViolation) => {
    if (args.type !== TYPES.grant && args.type !== TYPES.defaultPrivileges) return;
    const { namePrefix } = configOf<Config>(args, configSchema);
    const role = known(() => args.props.role);
    if (typeof role !== "string") return;
    const tenantRole = parseTenantName(namePrefix, role);
    if (tenantRole === undefined) return;
    const objectType = String(known(() => args.props.objectType) ?? "");
    const privileges = ((known(() => args.props.privileges) ?? []) as unknown[]).map((p) =>
      String(p).toUpperCase(),
    );
    const schema = known(() => args.props.schema);
    const where =
      objectType === "database"
        ? `database ${String(known(() => args.props.database))}`
        : `${plural(objectType)} in schema ${String(schema)}`;
    const isDefault = args.type === TYPES.defaultPrivileges;
    const subject = isDefault
      ? `Default privileges of ${String(known(() => args.props.owner))} give ${role} ${shown(privileges)} on new ${where}`
      : `Grant ${args.name} gives ${role} ${shown(privileges)} on ${where}`;

    if (isTrue(known(() => args.props.withGrantOption))) {
      reportViolation(`${subject} WITH GRANT OPTION; tenant roles never pass privileges on.`);
    }
    if (!isDefault) {
      for (const field of ["objects", "columns"]) {
        const listed = (known(() => args.props[field]) ?? []) as unknown[];
        if (listed.length > 0) {
          reportViolation(
            `${subject} for chosen ${field} (${listed.map(String).join(", ")}); the model grants on whole schemas.`,
          );
        }
      }
    }
    const allowedTypes = isDefault ? DEFAULT_PRIVILEGE_TYPES : (Object.keys(MODEL) as ObjectType[]);
    if (!allowedTypes.includes(objectType as ObjectType)) {
      reportViolation(
        `${subject}; tenant roles get ${isDefault ? "default privileges" : "grants"} on ${allowedTypes.map(plural).join(", ")} only.`,
      );
      return;
    }
    if (isDefault) {
      const owner = tenantNames(namePrefix, tenantRole.id).owner;
      if (known(() => args.props.owner) !== owner) {
        reportViolation(`${subject}; only the tenant's owner ${owner} creates its objects.`);
      }
    }
    const allowed = MODEL[objectType as ObjectType][tenantRole.kind] ?? [[]];
    if (!allowed.some((a) => same(a, privileges))) {
      const kind = KIND_NAMES[tenantRole.kind];
      reportViolation(
        `${subject}; ${kind} may ${isDefault ? "get" : "hold"} only ${allowed.map(shown).join(" or ")} there.`,
      );
    }
  },
};
