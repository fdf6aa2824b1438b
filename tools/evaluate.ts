import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { PROJECT } from "../infra/config";
import type { FleetOutputs } from "../infra/program";

/**
 * Runs the real program (infra/index.ts, the module `pulumi up` runs) under the SDK's mock
 * runtime, with the given stack config, and waits until every resource has registered. Used by
 * the offline check, the integration harness and the benchmarks.
 */
export interface EvaluateOptions {
  stack: string;
  /** Config keys of the project namespace, without `pg-tenants:`; objects are JSON-encoded. */
  config: Record<string, unknown>;
  /** Config of other namespaces as `ns:key` (e.g. `aws:region`). */
  otherConfig?: Record<string, unknown>;
  mocks: pulumi.runtime.Mocks;
  /** Preview (dry run) or update; default update, so outputs of mocks are known. */
  preview?: boolean;
  /** Called after the mock runtime is set up and before the program runs (e.g. to add transforms). */
  beforeRun?: () => void;
}

export async function evaluateProgram(options: EvaluateOptions): Promise<FleetOutputs> {
  const encode = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
  const config: Record<string, string> = {};
  for (const [k, v] of Object.entries(options.config)) config[`${PROJECT}:${k}`] = encode(v);
  for (const [k, v] of Object.entries(options.otherConfig ?? {})) config[k] = encode(v);
  pulumi.runtime.setAllConfig(config, [`${PROJECT}:clusterPasswords`]);
  await pulumi.runtime.setMocks(options.mocks, PROJECT, options.stack, options.preview ?? false);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const program = require(path.join(__dirname, "..", "infra")) as () => Promise<FleetOutputs>;
  // Inside a root Stack resource, as the engine runs it: stack transforms and parents work.
  // A program error is caught inside the stack and rethrown after it: thrown inside, the SDK's
  // internal promises would also reject, unhandled, as the engine's host would have absorbed them.
  let outputs: FleetOutputs | undefined;
  let failure: { error: unknown } | undefined;
  try {
    await pulumi.runtime.runInPulumiStack(async () => {
      try {
        options.beforeRun?.();
        outputs = await program();
      } catch (error) {
        failure = { error };
        return {};
      }
      return outputs;
    });
  } finally {
    await pulumi.runtime.disconnect();
  }
  if (failure !== undefined) throw failure.error;
  if (outputs === undefined) throw new Error("internal: the program returned no outputs");
  return outputs;
}
