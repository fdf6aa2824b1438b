import type { ResourceValidationPolicy } from "@pulumi/policy";
import { isTrue, TYPES } from "../tenancy";

/** Role inputs that would give a tenant role a cluster-wide privilege, with their SQL names. */
const FORBIDDEN_ATTRIBUTES: readonly [input: string, sql: string][] = [
  ["superuser", "SUPERUSER"],
  ["createDatabase", "CREATEDB"],
  ["createRole", "CREATEROLE"],
  ["replication", "REPLICATION"],
  ["bypassRowLevelSecurity", "BYPASSRLS"],
];

/** Every role the program declares is a tenant's, and none may reach beyond its tenant. */
export const tenantRoleAttributes: ResourceValidationPolicy = {
  name: "tenant-role-attributes",
  description:
    "Tenant roles hold no cluster-wide privilege: never SUPERUSER, CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS.",
  enforcementLevel: "mandatory",
  validateResource: (args, reportViolation) => {
    if (args.type !== TYPES.role) return;
    for (const [input, sql] of FORBIDDEN_ATTRIBUTES) {
      if (isTrue(args.props[input])) {
        reportViolation(
          `Tenant role ${args.props.name} must not be ${sql} (${input} must be false).`,
        );
      }
    }
  },
};
