import type { ResourceValidationPolicy } from "@pulumi/policy";
import { CLUSTER_PRIVILEGES } from "../../infra/model";
import { isTrue, TYPES } from "../tenancy";

/** Every role the program declares is a tenant's, and none may reach beyond its tenant. */
export const tenantRoleAttributes: ResourceValidationPolicy = {
  name: "tenant-role-attributes",
  description:
    "Tenant roles hold no cluster-wide privilege: never SUPERUSER, CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS.",
  enforcementLevel: "mandatory",
  validateResource: (args, reportViolation) => {
    if (args.type !== TYPES.role) return;
    for (const { input, keyword: sql } of CLUSTER_PRIVILEGES) {
      if (isTrue(args.props[input])) {
        reportViolation(
          `Tenant role ${args.props.name} must not be ${sql} (${input} must be false).`,
        );
      }
    }
  },
};
