import type { PolicyConfigSchema, ResourceValidationPolicy } from "@pulumi/policy";
import { KMS_DELETION_WINDOW_DAYS as WINDOW } from "../../infra/limits";
import { configOf, isTrue, TYPES } from "../tenancy";

const configSchema: PolicyConfigSchema = {
  properties: {
    minDeletionWindowDays: {
      type: "integer",
      minimum: WINDOW.min,
      maximum: WINDOW.max,
      default: WINDOW.awsDefault,
      description: `Shortest deletion window of a tenant key, in days (KMS allows ${WINDOW.min} to ${WINDOW.max}).`,
    },
  },
};

interface Config {
  minDeletionWindowDays: number;
}

/**
 * Deleting a tenant's key destroys its data for good (crypto-shredding): a mistaken deletion must
 * leave time to cancel it. Rotation limits what one leaked key version exposes.
 */
export const tenantKeySettings: ResourceValidationPolicy = {
  name: "tenant-key-settings",
  description:
    "Tenant KMS keys rotate and keep a deletion window of at least the configured minimum.",
  enforcementLevel: "mandatory",
  configSchema,
  validateResource: (args, reportViolation) => {
    if (args.type !== TYPES.kmsKey) return;
    const { minDeletionWindowDays } = configOf<Config>(args, configSchema);
    if (!isTrue(args.props.enableKeyRotation)) {
      reportViolation(
        `Tenant KMS key ${args.name} must have rotation on (enableKeyRotation: true).`,
      );
    }
    const days = Number(args.props.deletionWindowInDays ?? WINDOW.awsDefault);
    if (!(days >= minDeletionWindowDays)) {
      reportViolation(
        `Tenant KMS key ${args.name} must keep a deletion window of at least ${minDeletionWindowDays} days (has ${days}).`,
      );
    }
  },
};
