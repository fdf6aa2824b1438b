import { LOGIN_CONNECTION_LIMIT_MAX } from "../../infra/limits";
import type { PolicyConfigSchema, ResourceValidationPolicy } from "@pulumi/policy";
import { configOf, isTrue, TYPES } from "../tenancy";

const configSchema: PolicyConfigSchema = {
  properties: {
    maxConnectionLimit: {
      type: "integer",
      minimum: 1,
      default: LOGIN_CONNECTION_LIMIT_MAX,
      description:
        "The highest connection limit a tenant login role may have; a tenant file asking for more needs this raised in review.",
    },
  },
};

interface Config {
  maxConnectionLimit: number;
}

/** A login without a limit can exhaust the cluster's connections for every other tenant. */
export const loginRoleLimits: ResourceValidationPolicy = {
  name: "login-role-limits",
  description: "Tenant login roles have a connection limit and a password.",
  enforcementLevel: "mandatory",
  configSchema,
  validateResource: (args, reportViolation) => {
    if (args.type !== TYPES.role || !isTrue(args.props.login)) return;
    const { maxConnectionLimit } = configOf<Config>(args, configSchema);
    const name = args.props.name;
    // The provider's default is -1: no limit.
    const limit = Number(args.props.connectionLimit ?? -1);
    if (!Number.isInteger(limit) || limit < 1 || limit > maxConnectionLimit) {
      reportViolation(
        `Login role ${name} must have a connection limit from 1 to ${maxConnectionLimit} (has ${limit}).`,
      );
    }
    // `in`, not a read: during preview the generated password is not known yet.
    if (!("password" in args.props) && !("passwordWo" in args.props)) {
      reportViolation(`Login role ${name} must have a password (password or passwordWo).`);
    }
  },
};
