import type { PolicyResource, StackValidationPolicy } from "@pulumi/policy";
import { dependenciesOf, keyTenant, known, tenantOf, TYPES } from "../tenancy";

/**
 * Crypto-shredding one tenant must destroy that tenant's data and nobody else's: each tenant has
 * exactly one KMS key, and its alias and data key ciphertext use that key and no other tenant's.
 */
export const oneKeyPerTenant: StackValidationPolicy = {
  name: "one-key-per-tenant",
  description: "Each tenant has exactly one KMS key, and no key serves two tenants.",
  enforcementLevel: "mandatory",
  validateStack: (args, reportViolation) => {
    const keysOf = new Map<string, PolicyResource[]>();
    for (const key of args.resources) {
      if (key.type !== TYPES.kmsKey) continue;
      const tenant = keyTenant(key);
      if (tenant === undefined) continue;
      keysOf.set(tenant, [...(keysOf.get(tenant) ?? []), key]);
    }
    for (const [tenant, keys] of keysOf) {
      if (keys.length > 1) {
        reportViolation(
          `Tenant ${tenant} must have exactly one KMS key, not ${keys.length} (${keys.map((k) => k.name).join(", ")}).`,
          keys[1].urn,
        );
      }
    }

    const users: [type: string, property: string, what: (r: PolicyResource) => string][] = [
      [TYPES.kmsAlias, "targetKeyId", (r) => `KMS alias ${known(() => r.props.name) ?? r.name}`],
      [TYPES.kmsCiphertext, "keyId", (r) => `Data key ciphertext ${r.name}`],
    ];
    for (const [type, property, what] of users) {
      for (const user of args.resources) {
        if (user.type !== type) continue;
        const tenant = tenantOf(user);
        for (const key of dependenciesOf(user, [property], [TYPES.kmsKey])) {
          const owner = keyTenant(key);
          if (owner !== tenant) {
            reportViolation(
              `${what(user)} of tenant ${tenant ?? "none"} must use its own tenant's KMS key, not ${key.name} (tenant ${owner ?? "none"}).`,
              user.urn,
            );
          }
        }
      }
    }
  },
};
