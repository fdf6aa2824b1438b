import type { StackValidationPolicy } from "@pulumi/policy";
import { dependenciesOf, keyTenant, known, tenantOf, TYPES } from "../tenancy";

/**
 * A login's credentials secret is encrypted with its tenant's own KMS key: the AWS-managed
 * default key is shared by every secret of the account, and another tenant's key would survive
 * this tenant's crypto-shredding.
 */
export const credentialsEncryptedWithOwnKey: StackValidationPolicy = {
  name: "credentials-encrypted-with-own-key",
  description: "Credentials secrets are encrypted with their own tenant's KMS key.",
  enforcementLevel: "mandatory",
  validateStack: (args, reportViolation) => {
    for (const secret of args.resources) {
      if (secret.type !== TYPES.secret) continue;
      const tenant = tenantOf(secret);
      const label = `Credentials secret ${known(() => secret.props.name) ?? secret.name} of tenant ${tenant ?? "none"}`;
      const keys = dependenciesOf(secret, ["kmsKeyId"], [TYPES.kmsKey]);
      if (keys.length === 0) {
        reportViolation(
          `${label} must be encrypted with its tenant's KMS key (kmsKeyId must reference it).`,
          secret.urn,
        );
      }
      for (const key of keys) {
        const owner = keyTenant(key);
        if (owner !== tenant) {
          reportViolation(
            `${label} must be encrypted with its own tenant's KMS key, not ${key.name} (tenant ${owner ?? "none"}).`,
            secret.urn,
          );
        }
      }
    }
  },
};
