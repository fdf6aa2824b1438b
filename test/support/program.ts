import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { FleetOutputs } from "../../infra/program";
import { evaluateProgram } from "../../tools/evaluate";
import { readStackFile } from "../../tools/stack";
import { RecordingMocks, Registration } from "./mocks";

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

export interface TenantSpec {
  id: string;
  tier: string;
  extra?: string;
}

/** Writes tenant files into a fresh temporary folder and returns it. */
export function writeTenants(tenants: readonly TenantSpec[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pg-tenants-unit-"));
  for (const t of tenants) {
    fs.writeFileSync(
      path.join(dir, `${t.id}.yaml`),
      `id: ${t.id}\ndisplayName: Tenant ${t.id}\ntier: ${t.tier}\n${t.extra ?? ""}`,
    );
  }
  return dir;
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
      pulumi.runtime.registerStackTransformation((args) => {
        names.set(args.resource, args.name);
        const deps = (args.opts.dependsOn ?? []) as pulumi.Resource[];
        options.set(args.name, {
          protect: args.opts.protect,
          retainOnDelete: args.opts.retainOnDelete,
          ignoreChanges: args.opts.ignoreChanges,
          dependsOn: [deps].flat().map((d) => names.get(d) ?? "?"),
          deletedWith: args.opts.deletedWith ? names.get(args.opts.deletedWith) : undefined,
        });
        return undefined;
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
    if (obj["4dabf18193072939515e22adb298388d"] === "1b47061264138c4ac30d75fd1eb44270") {
      return { secret: unwrapSecrets(obj.value) };
    }
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, unwrapSecrets(v)]));
  }
  return value;
}
