import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPES } from "../tenancy";

/**
 * `ALL` grants more than any role of the model needs and makes the provider diff forever
 * (TF #32): privileges are listed one by one.
 */
export const noAllPrivileges: ResourceValidationPolicy = {
  name: "no-all-privileges",
  description: "Grants and default privileges list their privileges one by one, never ALL.",
  enforcementLevel: "mandatory",
  validateResource: (args, reportViolation) => {
    if (args.type !== TYPES.grant && args.type !== TYPES.defaultPrivileges) return;
    const privileges = (args.props.privileges ?? []) as string[];
    if (privileges.some((p) => /^ALL( PRIVILEGES)?$/i.test(String(p).trim()))) {
      reportViolation(
        `Privileges must be listed one by one, never ALL (${args.props.objectType} privileges of ${args.props.role} in ${args.props.database}).`,
      );
    }
  },
};
