import type {
  EnforcementLevel,
  Policies,
  PolicyProviderResource,
  PolicyResource,
  PolicyResourceOptions,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationPolicy,
} from "@pulumi/policy";
import { StackConfig } from "../../infra/config";
import { policies } from "../../policy/pack";
import { tenantOf } from "../../policy/tenancy";
import { Registration } from "./record";

// pg-tenants check (index.ts): Runs every policy of the pack on recorded registrations, as the policy host would.

export interface Violation {
  policy: string;
  level: Exclude<EnforcementLevel, "disabled">;
  message: string;
  /** The tenant the resource belongs to, if any. */
  tenant?: string;
  resource?: { type: string; name: string; urn: string };
}

/** `--policy-config`: the same JSON as `pulumi preview --policy-pack-config`. */
export type PackConfig = Record<
  string,
  EnforcementLevel | ({ enforcementLevel?: EnforcementLevel } & Record<string, unknown>)
>;

/**
 * The policy settings a stack's own config decides: its name prefix, without which a stack with
 * another prefix would be judged by names it does not use (tenants unrecognised, checks skipped).
 * Approved templates are not among them: approving a template is the pack owner's review.
 */
export function stackPolicyConfig(cfg: StackConfig): PackConfig {
  const fromStack: Record<string, unknown> = { namePrefix: cfg.namePrefix };
  const out: PackConfig = {};
  for (const policy of policies) {
    const keys = Object.keys(policy.configSchema?.properties ?? {});
    const settings = Object.fromEntries(
      Object.entries(fromStack).filter(([key]) => keys.includes(key)),
    );
    if (Object.keys(settings).length > 0) out[policy.name] = settings;
  }
  return out;
}

/** Settings supplied with --policy-config win over the stack's, key by key. */
export function mergePackConfig(base: PackConfig, supplied: PackConfig): PackConfig {
  const out: PackConfig = { ...base };
  for (const [name, value] of Object.entries(supplied)) {
    const over = typeof value === "string" ? { enforcementLevel: value } : value;
    const under = out[name];
    out[name] = { ...(typeof under === "object" ? under : {}), ...over };
  }
  return out;
}

class NotApplicable extends Error {}

/**
 * Runs every policy of the pack on the registrations, as the engine does at preview; `pack` names
 * other policies to run instead (the policy tests run one at a time).
 */
export async function runPolicies(
  registrations: readonly Registration[],
  packConfig: PackConfig = {},
  pack: Policies = policies,
): Promise<Violation[]> {
  const byUrn = new Map(registrations.map((r) => [r.urn, r]));
  const optsOf = (r: Registration): PolicyResourceOptions => ({
    protect: r.protect,
    ignoreChanges: r.ignoreChanges,
    aliases: r.aliases,
    customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
    additionalSecretOutputs: r.additionalSecretOutputs,
    deleteBeforeReplace: r.deleteBeforeReplace,
    ...(r.parent !== undefined ? { parent: r.parent } : {}),
  });
  const providerOf = (r: Registration): PolicyProviderResource | undefined => {
    const p = r.provider === undefined ? undefined : byUrn.get(r.provider);
    return p === undefined
      ? undefined
      : { type: p.type, name: p.name, urn: p.urn, props: p.inputs };
  };
  const typeCheck = (type: string) => ({
    isType: (cls: unknown) => (cls as { __pulumiType?: string }).__pulumiType === type,
  });

  // Stack policies see every resource with its parent and dependencies linked.
  const resources = new Map<string, PolicyResource>();
  for (const r of registrations) {
    const provider = providerOf(r);
    resources.set(r.urn, {
      type: r.type,
      name: r.name,
      urn: r.urn,
      props: r.state,
      opts: optsOf(r),
      ...(provider !== undefined ? { provider } : {}),
      dependencies: [],
      propertyDependencies: {},
      ...typeCheck(r.type),
      asType: () => undefined,
    });
  }
  for (const r of registrations) {
    const res = resources.get(r.urn) as PolicyResource;
    if (r.parent !== undefined) res.parent = resources.get(r.parent);
    res.dependencies = r.dependencies.flatMap((u) => resources.get(u) ?? []);
    for (const [prop, urns] of Object.entries(r.propertyDependencies)) {
      res.propertyDependencies[prop] = urns.flatMap((u) => resources.get(u) ?? []);
    }
  }

  const violations: Violation[] = [];
  for (const policy of pack) {
    const supplied = packConfig[policy.name];
    const settings =
      typeof supplied === "string" ? { enforcementLevel: supplied } : (supplied ?? {});
    const level = settings.enforcementLevel ?? policy.enforcementLevel ?? "mandatory";
    if (level === "disabled") continue;
    const config = Object.fromEntries(
      Object.entries(settings).filter(([key]) => key !== "enforcementLevel"),
    );
    const getConfig = <T extends object>() => config as T;
    const notApplicable = (reason?: string): never => {
      throw new NotApplicable(reason);
    };
    const report = (r: Registration | undefined) => (message: string, urn?: string) => {
      const target = urn !== undefined ? byUrn.get(urn) : r;
      const tenant = target === undefined ? undefined : tenantOf(target);
      violations.push({
        policy: policy.name,
        level: level === "remediate" ? "mandatory" : level,
        message,
        ...(tenant !== undefined ? { tenant } : {}),
        ...(target !== undefined
          ? { resource: { type: target.type, name: target.name, urn: target.urn } }
          : {}),
      });
    };
    try {
      if ("validateStack" in policy) {
        await (policy as StackValidationPolicy).validateStack(
          { resources: [...resources.values()], stackTags: new Map(), getConfig, notApplicable },
          report(undefined),
        );
        continue;
      }
      const validate = (policy as ResourceValidationPolicy).validateResource;
      const validations =
        validate === undefined ? [] : Array.isArray(validate) ? validate : [validate];
      for (const r of registrations) {
        const provider = providerOf(r);
        const args: ResourceValidationArgs = {
          type: r.type,
          props: r.inputs,
          urn: r.urn,
          name: r.name,
          opts: optsOf(r),
          ...(provider !== undefined ? { provider } : {}),
          stackTags: new Map(),
          ...typeCheck(r.type),
          asType: () => undefined,
          getConfig,
          notApplicable,
        };
        for (const v of validations) {
          try {
            await v(args, report(r));
          } catch (e) {
            if (!(e instanceof NotApplicable)) throw e;
          }
        }
      }
    } catch (e) {
      if (!(e instanceof NotApplicable)) {
        throw new Error(`policy ${policy.name} failed: ${(e as Error).message}`);
      }
    }
  }
  return violations;
}
