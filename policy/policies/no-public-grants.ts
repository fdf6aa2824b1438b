import type { ResourceValidationPolicy } from "@pulumi/policy";
import { PUBLIC_GRANTEE } from "../../infra/model";
import { TYPES } from "../tenancy";

/**
 * PUBLIC is every role of the cluster, every other tenant's included. The one PUBLIC grant the
 * program may declare is the revoke: a Grant to `public` with `privileges: []` runs the REVOKE
 * alone (see PROVIDER-NOTES).
 */
export const noPublicGrants: ResourceValidationPolicy = {
  name: "no-public-grants",
  description:
    "Nothing is granted to PUBLIC; the only PUBLIC grant allowed is the revoke with empty privileges.",
  enforcementLevel: "mandatory",
  validateResource: (args, reportViolation) => {
    if (args.type !== TYPES.grant && args.type !== TYPES.defaultPrivileges) return;
    if (String(args.props.role).toLowerCase() !== PUBLIC_GRANTEE) return;
    const privileges = (args.props.privileges ?? []) as string[];
    if (privileges.length === 0) return;
    const where = `${args.props.objectType} in ${args.props.database}`;
    reportViolation(
      args.type === TYPES.grant
        ? `Nothing may be granted to PUBLIC: only the revoke (privileges: []) is allowed, not ${privileges.join(", ")} on ${where}.`
        : `No default privileges may be given to PUBLIC: ${privileges.join(", ")} on future ${where}.`,
    );
  },
};
