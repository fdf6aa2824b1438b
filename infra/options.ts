import * as pulumi from "@pulumi/pulumi";

/**
 * Options of every tenant database. Data loss is the worst bug: the engine refuses any plan that
 * deletes it (protect), leaving the stack never drops it (retainOnDelete), and a new template
 * version applies to new tenants only (ignoreChanges, as `template` forces a replacement).
 */
export function databaseOptions(): Pick<
  pulumi.CustomResourceOptions,
  "protect" | "retainOnDelete" | "ignoreChanges"
> {
  return { protect: true, retainOnDelete: true, ignoreChanges: ["template"] };
}

/** Options of a tenant's KMS key: deleting it is crypto-shredding, so only a deliberate step may. */
export function keyOptions(): Pick<pulumi.CustomResourceOptions, "protect" | "retainOnDelete"> {
  return { protect: true, retainOnDelete: true };
}
