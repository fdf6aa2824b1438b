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
  const outputs = await program();
  await pulumi.runtime.disconnect();
  return outputs;
}
