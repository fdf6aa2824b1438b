import * as pulumi from "@pulumi/pulumi";
import type { FleetOutputs } from "../infra/program";
import { evaluateProgram } from "../tools/evaluate";
import { readStackFile } from "../tools/stack";
import { RecordingMocks, Registration, watchResources } from "./mocks";
import { TenantSpec, writeTenants } from "./tenantFiles";

export type { TenantSpec } from "./tenantFiles";
export { writeTenants } from "./tenantFiles";

/** The resource options a stack transform saw for one resource, with dependencies by name. */
export interface SeenOptions {
  protect?: boolean;
  retainOnDelete?: boolean;
  ignoreChanges?: string[];
  dependsOn: string[];
  deletedWith?: string;
}

export interface ProgramRun {
  mocks: RecordingMocks;
  outputs: FleetOutputs;
  /** Registrations without the root stack. */
  registrations: Registration[];
  options: Map<string, SeenOptions>;
}

/**
 * Runs the real program under recording mocks for a stack file of this repo, with the tenants
 * given and config overrides, and records every resource's options through a stack transform.
 */
export async function runProgram(
  stack: string,
  tenants: readonly TenantSpec[],
  overrides: Record<string, unknown> = {},
  mocks = new RecordingMocks(),
): Promise<ProgramRun> {
  const file = readStackFile(stack);
  const options = new Map<string, SeenOptions>();
  const names = new Map<pulumi.Resource, string>();
  const config: Record<string, unknown> = {
    ...file.raw,
    tenantsDir: writeTenants(tenants),
    clusterPasswords: Object.fromEntries(
      Object.keys((file.raw.clusters ?? {}) as object).map((tier) => [
        tier,
        `provisioner-password-${tier}`,
      ]),
    ),
    ...overrides,
  };
  for (const [key, value] of Object.entries(overrides)) if (value === undefined) delete config[key];
  const outputs = await evaluateProgram({
    stack,
    config,
    otherConfig: file.other,
    mocks,
    beforeRun: () =>
      watchResources(({ resource, name, opts }) => {
        names.set(resource, name);
        const deps = (opts.dependsOn ?? []) as pulumi.Resource[];
        options.set(name, {
          protect: opts.protect,
          retainOnDelete: opts.retainOnDelete,
          ignoreChanges: opts.ignoreChanges,
          dependsOn: [deps].flat().map((d) => names.get(d) ?? "?"),
          deletedWith: opts.deletedWith ? names.get(opts.deletedWith) : undefined,
        });
      }),
  });
  return {
    mocks,
    outputs,
    registrations: mocks.registrations.filter((r) => r.type !== "pulumi:pulumi:Stack"),
    options,
  };
}

/** Registrations that belong to a tenant: its component and everything named after it. */
export function ofTenant(regs: readonly Registration[], id: string): Registration[] {
  return regs.filter(
    (r) => r.name === id || r.name.startsWith(`${id}-`) || r.name.startsWith(`${id}@`),
  );
}

/** Replaces the runtime's secret wrapper `{<sig>: ..., value}` by `{secret: value}` for comparisons. */
export function unwrapSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    if (obj[pulumi.runtime.specialSigKey] === pulumi.runtime.specialSecretSig) {
      return { secret: unwrapSecrets(obj.value) };
    }
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, unwrapSecrets(v)]));
  }
  return value;
}
