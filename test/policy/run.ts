import type { ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import { PackConfig, runPolicies } from "../../tools/check/policies";
import { Fixture, registrations, StackFixture } from "./util";

/**
 * One policy over fixtures, run by the check's runner (tools/check/policies.ts): the arguments a
 * policy gets here are the ones it gets from npm run check.
 */

/** The policy's settings in the pack config, as `--policy-config` gives them. */
const settingsOf = (
  policy: ResourceValidationPolicy | StackValidationPolicy,
  config: Record<string, unknown>,
): PackConfig => ({ [policy.name]: config as PackConfig[string] });

/** The messages a resource policy reports for one fixture, in order. */
export async function resourceViolations(
  policy: ResourceValidationPolicy,
  f: Fixture,
  config: Record<string, unknown> = {},
): Promise<string[]> {
  const [fixture, ...providers] = registrations([f]);
  const found = await runPolicies([fixture, ...providers], settingsOf(policy, config), [policy]);
  return found.filter((v) => v.resource?.urn === fixture.urn).map((v) => v.message);
}

/** The messages (and the URNs they name) a stack policy reports for a set of resources. */
export async function stackViolations(
  policy: StackValidationPolicy,
  resources: StackFixture[],
  config: Record<string, unknown> = {},
): Promise<{ message: string; urn?: string }[]> {
  const found = await runPolicies(registrations(resources), settingsOf(policy, config), [policy]);
  return found.map((v) => ({
    message: v.message,
    ...(v.resource !== undefined ? { urn: v.resource.urn } : {}),
  }));
}
