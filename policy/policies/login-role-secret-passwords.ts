import type { PolicyConfigSchema, StackValidationPolicy } from "@pulumi/policy";
import { configOf, dependenciesOf, isTrue, known, tenantOf, TYPES } from "../tenancy";

const configSchema: PolicyConfigSchema = {
  properties: {
    passwordSources: {
      type: "array",
      items: { type: "string" },
      default: [TYPES.randomPassword],
      description:
        "Resource types whose output may be a login role's password (secret generators).",
    },
  },
};

interface Config {
  passwordSources: string[];
}

/**
 * A password written in the program or its config is a literal: it sits in the history and in
 * every checkout. Only a password that comes from a generator resource, a secret output that
 * never leaves the state, is acceptable; and it must be the role's own tenant's generator.
 */
export const loginRoleSecretPasswords: StackValidationPolicy = {
  name: "login-role-secret-passwords",
  description:
    "Tenant login role passwords come from their own tenant's secret generator (random.RandomPassword), never a literal.",
  enforcementLevel: "mandatory",
  configSchema,
  validateStack: (args, reportViolation) => {
    const { passwordSources } = configOf<Config>(args, configSchema);
    for (const role of args.resources) {
      if (role.type !== TYPES.role || !isTrue(known(() => role.props.login))) continue;
      const name = known(() => role.props.name) ?? role.name;
      const sources = dependenciesOf(role, ["password", "passwordWo"], passwordSources);
      if (sources.length === 0) {
        reportViolation(
          `Login role ${name} must take its password from a secret generator (${passwordSources.join(", ")}), never a literal.`,
          role.urn,
        );
        continue;
      }
      const tenant = tenantOf(role);
      for (const source of sources) {
        const owner = tenantOf(source);
        if (owner !== tenant) {
          reportViolation(
            `Login role ${name} must take its password from its own tenant's generator, not from ${source.name} (tenant ${owner ?? "none"}).`,
            role.urn,
          );
        }
      }
    }
  },
};
