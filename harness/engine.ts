import { spawn } from "child_process";
import { randomBytes } from "crypto";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { PROJECT } from "../infra/config";
import { evaluateProgram } from "../tools/evaluate";
import { RecordingMocks } from "./mocks";
import { openStack, previewThenUp, runOptions, StackRun } from "../tools/lib/deploy";
import { Engine, findEngine } from "../tools/lib/engine";

/**
 * The engine lane's view of the Pulumi engine: `npm test` runs the lane whenever an engine is
 * found (tools/lib/engine.ts: `npm run engine`'s, else a `pulumi` on PATH), and skips it with
 * one line when none is. `PGTENANTS_ENGINE_LANE=required` (set by .ci/run) makes a missing
 * engine a failure instead.
 */

export const PROJECT_ROOT = path.join(__dirname, "..");

export interface EngineLane {
  available: boolean;
  engine?: Engine;
  /** Why the lane is skipped. */
  reason?: string;
}

export function engineLane(env: NodeJS.ProcessEnv = process.env): EngineLane {
  if (env.PGTENANTS_ENGINE_LANE === "skip") {
    return { available: false, reason: "engine lane skipped: PGTENANTS_ENGINE_LANE=skip" };
  }
  const engine = findEngine(PROJECT_ROOT, env);
  if (engine !== undefined) return { available: true, engine };
  const reason =
    "engine lane skipped: no Pulumi engine (npm run engine builds one from the Go modules; or install the Pulumi CLI)";
  if (env.PGTENANTS_ENGINE_LANE === "required") {
    throw new Error(`${reason}; PGTENANTS_ENGINE_LANE=required makes that a failure`);
  }
  return { available: false, reason };
}

/** What a fleet deployed through the engine needs: where it lives and its stack config. */
export interface EngineTarget {
  /** The fleet's own folder: the work folder and the state go under it. */
  dir: string;
  stack: string;
  /** Plain config (keys without namespace) and secret config of the stack. */
  config: Record<string, unknown>;
  secrets: Record<string, unknown>;
  /** The state's passphrase: the same for every run of one fleet. */
  passphrase: string;
}

/** A passphrase for a new fleet's state. */
export const newPassphrase = () => randomBytes(18).toString("base64url");

/** One stack of the real engine over a fleet's clusters, with a file backend in its folder. */
export async function engineStack(engine: Engine, target: EngineTarget): Promise<Stack> {
  const run: StackRun = {
    root: PROJECT_ROOT,
    stack: target.stack,
    engine,
    workDir: path.join(target.dir, "workspace"),
    backendDir: path.join(target.dir, "state"),
    passphrase: target.passphrase,
    config: target.config,
    secrets: target.secrets,
  };
  return openStack(run);
}

/** What one engine operation reported: the summary and each step's operation by URN. */
export interface EngineRun {
  changes: Record<string, number>;
  /** URN -> operation (create, update, same, delete, replace, ...), from the engine's events. */
  steps: Map<string, string>;
  /** The engine's own display of the run. */
  output: string;
}

/** Collects a run's step events and display. */
function recorder() {
  const steps = new Map<string, string>();
  let output = "";
  return {
    steps,
    output: () => output,
    onOutput: (text: string) => {
      output += text;
    },
    onEvent: (event: EngineEvent) => {
      const step = event.resOutputsEvent?.metadata ?? event.resourcePreEvent?.metadata;
      if (step !== undefined) steps.set(step.urn, step.op);
    },
  };
}

/**
 * One stack of the real engine for a fleet of the harness: `up`, `preview` and `refresh` with
 * their step events, the outputs with secrets decrypted, and the CLI itself with the stack's
 * environment (for `pulumi state ...` as docs/day-two.md's steps run it).
 */
export class EngineDeployer {
  private stack?: Promise<Stack>;

  constructor(
    private readonly engine: Engine,
    private readonly target: EngineTarget,
  ) {}

  private open(): Promise<Stack> {
    this.stack ??= engineStack(this.engine, this.target);
    return this.stack;
  }

  /** `pulumi up` after a preview; `onEvent` sees the update's engine events as they come. */
  async up(
    opts: { refresh?: boolean; onEvent?: (event: EngineEvent) => void } = {},
  ): Promise<EngineRun> {
    const stack = await this.open();
    const r = recorder();
    const result = await previewThenUp(stack, {
      refresh: opts.refresh,
      onOutput: r.onOutput,
      onEvent: (event) => {
        r.onEvent(event);
        opts.onEvent?.(event);
      },
    });
    return { changes: result.summary.resourceChanges ?? {}, steps: r.steps, output: r.output() };
  }

  async preview(
    opts: { expectNoChanges?: boolean; policyPacks?: string[]; policyPackConfigs?: string[] } = {},
  ): Promise<EngineRun> {
    const stack = await this.open();
    const r = recorder();
    const result = await stack.preview({
      ...opts,
      ...runOptions(stack),
      onOutput: r.onOutput,
      onEvent: r.onEvent,
    });
    return { changes: result.changeSummary, steps: r.steps, output: r.output() };
  }

  /** `pulumi up --refresh` as one CLI run, without the preview `up` runs first (benchmarks). */
  async refreshUp(): Promise<EngineRun> {
    const stack = await this.open();
    const r = recorder();
    const result = await stack.up({
      refresh: true,
      ...runOptions(stack),
      onOutput: r.onOutput,
      onEvent: r.onEvent,
    });
    return { changes: result.summary.resourceChanges ?? {}, steps: r.steps, output: r.output() };
  }

  async refresh(): Promise<EngineRun> {
    const stack = await this.open();
    const r = recorder();
    const result = await stack.refresh({
      ...runOptions(stack),
      onOutput: r.onOutput,
      onEvent: r.onEvent,
    });
    return { changes: result.summary.resourceChanges ?? {}, steps: r.steps, output: r.output() };
  }

  /** The stack outputs, secrets decrypted (they never leave the test process). */
  async outputs(): Promise<Record<string, unknown>> {
    const stack = await this.open();
    return Object.fromEntries(
      Object.entries(await stack.outputs()).map(([k, v]) => [k, v.value as unknown]),
    );
  }

  /** Runs the engine's CLI in the stack's work folder, with its backend and passphrase. */
  async cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const stack = await this.open();
    const env = { ...process.env, ...stack.workspace.envVars };
    return new Promise((resolve, reject) => {
      const child = spawn(this.engine.cli, args, { cwd: stack.workspace.workDir, env });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  }
}

/**
 * The URN of every resource the program registers under the SDK's mock runtime for this stack
 * config (the stack itself included): what the mock-runtime tests see, for comparing with the
 * engine's plan.
 */
export async function mockRuntimeUrns(
  stack: string,
  config: Record<string, unknown>,
): Promise<string[]> {
  // The mock runtime qualifies a URN's type by the immediate parent only; the engine by every
  // ancestor below the stack. The chain is rebuilt here from the parents the transforms see.
  const seen: Array<{ resource: pulumi.Resource; type: string; name: string }> = [];
  const parents = new Map<pulumi.Resource, pulumi.Resource | undefined>();
  await evaluateProgram({
    stack,
    config,
    mocks: new RecordingMocks(),
    beforeRun: () =>
      pulumi.runtime.registerStackTransformation((args) => {
        seen.push({ resource: args.resource, type: args.type, name: args.name });
        parents.set(args.resource, args.opts.parent);
        return undefined;
      }),
  });
  const types = new Map(seen.map((s) => [s.resource, s.type]));
  const qualified = (r: pulumi.Resource): string => {
    const parent = parents.get(r);
    const own = types.get(r) ?? "";
    return parent !== undefined && types.has(parent) ? `${qualified(parent)}$${own}` : own;
  };
  const urns = seen.map(
    (s) => `urn:pulumi:${stack}::${PROJECT}::${qualified(s.resource)}::${s.name}`,
  );
  return [
    `urn:pulumi:${stack}::${PROJECT}::pulumi:pulumi:Stack::${PROJECT}-${stack}`,
    ...urns,
  ].sort();
}
