import type { PolicyConfigSchema, ResourceValidationPolicy } from "@pulumi/policy";
import { ENCRYPTED_SSL_MODES, PG_SSL_MODES } from "../../infra/ssl";
import { configOf, isTrue, stackOf, TYPES } from "../tenancy";

const configSchema: PolicyConfigSchema = {
  properties: {
    forbiddenUsernames: {
      type: "array",
      items: { type: "string" },
      default: ["postgres"],
      description: "Roles the program must never connect as (bootstrap superusers).",
    },
    secureSslModes: {
      type: "array",
      items: {
        type: "string",
        enum: [...PG_SSL_MODES],
      },
      default: [...ENCRYPTED_SSL_MODES],
      description: "sslmode values allowed on stacks other than localStacks.",
    },
    localStacks: {
      type: "array",
      items: { type: "string" },
      default: ["local"],
      description:
        "Stacks of embedded local clusters, which have no TLS: sslmode is not checked there.",
    },
  },
};

interface Config {
  forbiddenUsernames: string[];
  secureSslModes: string[];
  localStacks: string[];
}

/**
 * The program connects as the provisioning role (CREATEDB CREATEROLE, never a superuser), and the
 * provider must know it (its `superuser` default, true, makes reads fail or assume too much). Off
 * the local stack, the connection is encrypted.
 */
export const clusterProviderSettings: ResourceValidationPolicy = {
  name: "cluster-provider-settings",
  description:
    "Cluster providers connect as a non-superuser provisioning role (superuser: false, never postgres) with sslmode require or stricter off local stacks.",
  enforcementLevel: "mandatory",
  configSchema,
  validateResource: (args, reportViolation) => {
    if (args.type !== TYPES.provider) return;
    const { forbiddenUsernames, secureSslModes, localStacks } = configOf<Config>(
      args,
      configSchema,
    );
    const label = `The provider of cluster ${args.name}`;
    if (args.props.superuser === undefined || isTrue(args.props.superuser)) {
      reportViolation(
        `${label} must set superuser: false (the provisioning role is no superuser; the default is true).`,
      );
    }
    const username = args.props.username as string | undefined;
    if (username === undefined || forbiddenUsernames.includes(username)) {
      reportViolation(
        `${label} must connect as the provisioning role, never as ${username ?? "the default user"} (forbidden: ${forbiddenUsernames.join(", ")}).`,
      );
    }
    const stack = stackOf(args.urn);
    const sslmode = args.props.sslmode as string | undefined;
    if (
      !localStacks.includes(stack) &&
      (sslmode === undefined || !secureSslModes.includes(sslmode))
    ) {
      reportViolation(
        `${label} must use sslmode ${secureSslModes.join(", ")} on stack ${stack} (has ${sslmode ?? "none"}).`,
      );
    }
  },
};
