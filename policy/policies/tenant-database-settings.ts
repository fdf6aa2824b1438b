import type { PolicyConfigSchema, ResourceValidationPolicy } from "@pulumi/policy";
import { configOf, TYPES } from "../tenancy";

const configSchema: PolicyConfigSchema = {
  properties: {
    approvedTemplates: {
      type: "array",
      items: { type: "string" },
      minItems: 1,
      default: ["customer_template_v1"],
      description:
        "Template databases tenant databases may be cloned from (the stacks' pg-tenants:template).",
    },
  },
};

interface Config {
  approvedTemplates: string[];
}

/**
 * A tenant database is cloned from a reviewed template (objects owned by pg_database_owner, no
 * PUBLIC CREATE), can never be dropped by a plan (protect), and has the derived, stable name the
 * application resolves (an autonamed database gets a random suffix).
 */
export const tenantDatabaseSettings: ResourceValidationPolicy = {
  name: "tenant-database-settings",
  description:
    "Tenant databases are cloned from an approved template, protected, and explicitly named.",
  enforcementLevel: "mandatory",
  configSchema,
  validateResource: (args, reportViolation) => {
    if (args.type !== TYPES.database) return;
    const { approvedTemplates } = configOf<Config>(args, configSchema);
    const name = args.props.name as string | undefined;
    const label = name ?? args.name;
    if (name === undefined || name === "") {
      reportViolation(
        `Tenant database ${args.name} must set its name explicitly (an autonamed database gets a random suffix).`,
      );
    }
    const template = args.props.template as string | undefined;
    if (template === undefined || !approvedTemplates.includes(template)) {
      reportViolation(
        `Tenant database ${label} must be cloned from an approved template (${approvedTemplates.join(", ")}), not ${template ?? "the default template0"}.`,
      );
    }
    if (args.opts.protect !== true) {
      reportViolation(
        `Tenant database ${label} must be protected (protect: true) so that no plan can drop it.`,
      );
    }
  },
};
