import type { PolicyConfigSchema, ResourceValidationPolicy } from "@pulumi/policy";
import { CAPABILITIES, CAPABILITY_NAMES } from "../../infra/containment";
import { parseTenantName, tenantNames } from "../../infra/naming";
import { configOf, isTrue, NAME_PREFIX_SCHEMA, TYPES } from "../tenancy";

const configSchema: PolicyConfigSchema = { properties: { ...NAME_PREFIX_SCHEMA } };

interface Config {
  namePrefix: string;
}

/** The capability roles a login of this kind may hold (a tier's choice, infra/containment.ts). */
function capabilityRolesOf(kind: string): string[] {
  return CAPABILITY_NAMES.filter((c) =>
    (CAPABILITIES[c].logins as readonly string[]).includes(kind),
  ).map((c) => CAPABILITIES[c].role);
}

/**
 * Membership is how PostgreSQL privileges flow between roles: a login that is a member of
 * another tenant's role can read that tenant's data. A tenant's logins are members of their own
 * group and of the capability roles their kind may hold (advisory locks for both, large objects
 * for rw) alone; its group and owner are members of nothing; no tenant role is granted to
 * another tenant's role, nor to anyone but the cluster's provisioning role.
 */
export const tenantRoleMemberships: ResourceValidationPolicy = {
  name: "tenant-role-memberships",
  description:
    "A tenant login role is a member of its own tenant's group and nothing else; no role is granted another tenant's role.",
  enforcementLevel: "mandatory",
  configSchema,
  validateResource: (args, reportViolation) => {
    const { namePrefix } = configOf<Config>(args, configSchema);
    const parse = (name: unknown) =>
      typeof name === "string" ? parseTenantName(namePrefix, name) : undefined;

    if (args.type === TYPES.role) {
      const name = String(args.props.name);
      const self = parse(name);
      if (self === undefined) return;
      const group = tenantNames(namePrefix, self.id).group;
      const memberOf = ((args.props.roles ?? []) as unknown[]).map(String);
      const isLogin = self.kind === "rw" || self.kind === "ro";
      for (const granted of memberOf) {
        const other = parse(granted);
        if (other !== undefined && other.id !== self.id) {
          reportViolation(
            `Role ${name} must not be granted ${granted}, a role of tenant ${other.id}.`,
          );
        } else if (
          !isLogin ||
          (granted !== group && !capabilityRolesOf(self.kind).includes(granted))
        ) {
          reportViolation(
            isLogin
              ? `Login role ${name} must be a member of its tenant's group ${group} and of no role but ${[...capabilityRolesOf(self.kind)].join(" or ")} (also a member of ${granted}).`
              : `Role ${name} must not be a member of any role (is a member of ${granted}).`,
          );
        }
      }
      if (isLogin && !memberOf.includes(group)) {
        reportViolation(`Login role ${name} must be a member of its tenant's group ${group}.`);
      }
      return;
    }

    if (args.type === TYPES.grantRole) {
      const member = String(args.props.role);
      const granted = String(args.props.grantRole);
      const m = parse(member);
      const g = parse(granted);
      if (m !== undefined && g !== undefined && m.id !== g.id) {
        reportViolation(`Role ${member} must not be granted ${granted}, a role of tenant ${g.id}.`);
      } else if (m !== undefined && g !== undefined) {
        // The provider revokes a role's memberships on every update of the role (#131).
        reportViolation(
          `Memberships among tenant ${g.id}'s roles must be declared on the role (roles), not by a GrantRole of ${granted} to ${member}.`,
        );
      } else if (m !== undefined) {
        reportViolation(
          `Tenant role ${member} must not be granted ${granted}: tenant roles are members of their own group only.`,
        );
      } else if (g !== undefined) {
        // Without the provider's inputs the provisioning role is unknown: nothing to compare.
        const provisioner = args.provider?.props.username;
        if (provisioner !== undefined && member !== provisioner) {
          reportViolation(
            `Tenant role ${granted} must be granted only to the cluster's provisioning role (${provisioner ?? "unknown"}), not to ${member}.`,
          );
        }
      }
      if (g !== undefined && isTrue(args.props.withAdminOption)) {
        reportViolation(
          `Tenant role ${granted} must not be granted WITH ADMIN OPTION (to ${member}).`,
        );
      }
    }
  },
};
