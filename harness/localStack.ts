import { parseStackConfig, StackConfig } from "../infra/config";
import type { Tenant } from "../infra/manifest";
import { readStackFile } from "../tools/stack";

/**
 * One tenant on the local stack, for tests of what the model and the commands make of it without
 * running the program: the stack's configuration as stacks/Pulumi.local.yaml gives it, and a
 * tenant as parseManifest returns it.
 */

/** The local stack's configuration (stacks/Pulumi.local.yaml). */
export const localConfig = (): StackConfig => parseStackConfig("local", readStackFile("local").raw);

/** Tenant acme, active on tier standard; `extra` replaces or adds fields. */
export const tenant = (extra: Partial<Tenant> = {}): Tenant => ({
  id: "acme",
  displayName: "Acme",
  tier: "standard",
  state: "active",
  file: "tenants/acme.yaml",
  ...extra,
});
