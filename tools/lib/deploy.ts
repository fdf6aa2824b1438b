import * as fs from "fs";
import * as path from "path";
import type { Stack, UpOptions, UpResult } from "@pulumi/pulumi/automation";
import { parse, stringify } from "yaml";
import { DEFAULT_PROVIDER_CONNECTIONS, PROJECT } from "../../infra/config";
import { InputError } from "../../infra/issues";
import type { Engine } from "./engine";

/**
 * Runs the program under the real Pulumi engine through the Automation API, with the program
 * inline: the CLI connects back to this process's language runtime (`pulumi up --client`), so
 * the program runs in the tools' own Node.js process and no `pulumi-language-nodejs` plugin is
 * needed. State lives in a file backend, secrets under a passphrase.
 *
 * The run's Pulumi.yaml and stack file live in a work folder of their own (e.g.
 * `.local/workspace`), written from the project's and from the config given here: the CLI writes
 * encrypted config (and its salt) into the stack file, which must never be a tracked one.
 */

export interface StackRun {
  /** The project root: Pulumi.yaml, infra/ and (for relative tenantsDir) the tenants folder. */
  root: string;
  stack: string;
  engine: Engine;
  /** The run's own folder for Pulumi.yaml and stacks/Pulumi.<stack>.yaml. */
  workDir: string;
  /** A file backend folder (state); created if missing. */
  backendDir: string;
  passphrase: string;
  /** Plain config of the project namespace, keys without `pg-tenants:`. */
  config: Record<string, unknown>;
  /** Secret config of the project namespace (e.g. clusterPasswords), set encrypted. */
  secrets: Record<string, unknown>;
}

/**
 * How many resource operations the engine runs at once on a stack: one less than the smallest
 * connection pool of its cluster providers (`clusters.<tier>.maxConnections`, 10 by default).
 * The postgresql provider holds a transaction with an advisory lock on the provisioning role
 * while it takes a second connection from the same pool; with as many operations as
 * connections, every connection can wait on that lock and the holder never gets its second:
 * the operations stall until the lock timeout, and the provider keeps the aborted transactions
 * until the server's idle-in-transaction timeout ends them. Measured: 10 new tenants on a pool
 * of 4 stalled `pulumi up` for over 7 minutes.
 */
export function engineParallel(config: Record<string, unknown>): number {
  const clusters = (config.clusters ?? {}) as Record<string, { maxConnections?: unknown }>;
  const pools = Object.values(clusters).map((c) =>
    typeof c.maxConnections === "number" ? c.maxConnections : DEFAULT_PROVIDER_CONNECTIONS,
  );
  return Math.max(1, Math.min(...(pools.length > 0 ? pools : [DEFAULT_PROVIDER_CONNECTIONS])) - 1);
}

/** The parallelism of each stack openStack returned (engineParallel of its config). */
const parallelOf = new WeakMap<Stack, number>();

/** The options every preview, up and refresh of a stack carries: its safe parallelism. */
export function runOptions(stack: Stack): { parallel?: number } {
  const parallel = parallelOf.get(stack);
  return parallel === undefined ? {} : { parallel };
}

/** Environment of every CLI call of a run: the engine's, the backend and the passphrase. */
export function runEnv(run: StackRun): Record<string, string> {
  return {
    ...run.engine.env,
    PULUMI_BACKEND_URL: `file://${path.resolve(run.backendDir)}`,
    PULUMI_CONFIG_PASSPHRASE: run.passphrase,
    PULUMI_SKIP_UPDATE_CHECK: "true",
  };
}

/**
 * Writes the work folder: the project file (as the repository's) and the stack file with the
 * given plain config, keeping the salt of an earlier run so its encrypted values stay readable.
 * Relative tenantsDir is made absolute: the program resolves it against this process's cwd.
 */
export function writeWorkspace(run: StackRun): void {
  const project = parse(fs.readFileSync(path.join(run.root, "Pulumi.yaml"), "utf8")) as Record<
    string,
    unknown
  >;
  const stacksDir = path.join(run.workDir, String(project.stackConfigDir ?? "."));
  fs.mkdirSync(stacksDir, { recursive: true, mode: 0o700 });
  // `main` must name a folder that exists: the CLI checks it even for an inline program.
  const main = path.resolve(run.root, String(project.main ?? "."));
  fs.writeFileSync(path.join(run.workDir, "Pulumi.yaml"), stringify({ ...project, main }));
  const stackFile = path.join(stacksDir, `Pulumi.${run.stack}.yaml`);
  const previous = fs.existsSync(stackFile)
    ? ((parse(fs.readFileSync(stackFile, "utf8")) ?? {}) as Record<string, unknown>)
    : {};
  const config: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(run.config)) {
    config[`${PROJECT}:${key}`] =
      key === "tenantsDir" && typeof value === "string" ? path.resolve(run.root, value) : value;
  }
  const doc = {
    ...(previous.encryptionsalt !== undefined ? { encryptionsalt: previous.encryptionsalt } : {}),
    config,
  };
  fs.writeFileSync(stackFile, stringify(doc), { mode: 0o600 });
}

/**
 * When the engine ends a run early (a resource failed, a cluster went away), registrations the
 * inline program still has in flight reject with "Resource monitor is terminating" after the
 * run has already failed with the engine's own error. The Pulumi runner ignores those; a tool
 * running the program inline must too, or they surface as unhandled rejections. Anything else
 * unhandled is rethrown. (The engine lane's jest environment drops the same two.)
 */
let terminationFilterInstalled = false;
function ignoreMonitorTermination(): void {
  if (terminationFilterInstalled) return;
  terminationFilterInstalled = true;
  process.on("unhandledRejection", (reason) => {
    if (reason instanceof Error && reason.message === "Resource monitor is terminating") return;
    // The program's own input error: the engine reports it as the run's diagnostic, and the
    // runtime's stack outputs reject with it again, unobserved.
    if (reason instanceof InputError) return;
    throw reason;
  });
}

/** The stack of a run, created on first use, with its config and secrets in place. */
export async function openStack(run: StackRun): Promise<Stack> {
  ignoreMonitorTermination();
  const { LocalWorkspace, PulumiCommand } = await import("@pulumi/pulumi/automation");
  fs.mkdirSync(run.backendDir, { recursive: true, mode: 0o700 });
  writeWorkspace(run);
  const cliDir = path.dirname(run.engine.cli);
  const onPath = (process.env.PATH ?? "").split(path.delimiter).includes(cliDir);
  const pulumiCommand = await PulumiCommand.get(
    run.engine.kind === "installed" && onPath ? {} : { root: path.dirname(cliDir) },
  );
  const programDir = path.join(run.root, "infra");
  const stack = await LocalWorkspace.createOrSelectStack(
    {
      stackName: run.stack,
      projectName: PROJECT,
      // infra/index.ts exports the program as a CommonJS function (`export =`); it is required
      // when the engine asks for it, so the runtime it registers with is the one of this run.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      program: async () => (require(programDir) as () => Promise<Record<string, unknown>>)(),
    },
    {
      workDir: run.workDir,
      pulumiCommand,
      secretsProvider: "passphrase",
      envVars: runEnv(run),
    },
  );
  const secrets = Object.entries(flatten(run.secrets)).map(
    ([key, value]) => [`${PROJECT}:${key}`, { value, secret: true }] as const,
  );
  if (secrets.length > 0) await stack.setAllConfig(Object.fromEntries(secrets), true);
  parallelOf.set(stack, engineParallel(run.config));
  return stack;
}

/** `{a: {b: "x"}}` as `{"a.b": "x"}`: config paths for setAllConfig. */
function flatten(value: Record<string, unknown>, prefix = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    const full = prefix === "" ? key : `${prefix}.${key}`;
    if (v !== null && typeof v === "object" && !Array.isArray(v))
      Object.assign(out, flatten(v as Record<string, unknown>, full));
    else out[full] = String(v);
  }
  return out;
}

/** "created 75, updated 2, unchanged 1" from an engine summary's resource changes. */
export function describeChanges(changes: Record<string, number> | undefined): string {
  const words: Record<string, string> = {
    create: "created",
    update: "updated",
    delete: "deleted",
    replace: "replaced",
    same: "unchanged",
  };
  const parts = Object.entries(changes ?? {})
    .filter(([, n]) => n > 0)
    .map(([op, n]) => `${words[op] ?? op} ${n}`);
  return parts.length > 0 ? parts.join(", ") : "nothing";
}

/** True when a summary's changes are all `same`: the run changed nothing. */
export function changedNothing(changes: Record<string, number> | undefined): boolean {
  return Object.entries(changes ?? {}).every(([op, n]) => op === "same" || n === 0);
}

/**
 * `pulumi up` as a careful operator runs it: a preview first, and the update only if the preview
 * succeeds. The Automation API's `up` skips the CLI's own preview, and a run that the engine
 * refuses part-way (a protected database it would have to delete, after a tier edit or a removed
 * tenant file) would already have created the rest; the preview refuses before any step.
 */
export async function previewThenUp(
  stack: Stack,
  opts: Pick<UpOptions, "onOutput" | "onEvent" | "refresh"> = {},
): Promise<UpResult> {
  await stack.preview({ onOutput: opts.onOutput, refresh: opts.refresh, ...runOptions(stack) });
  return stack.up({ ...opts, ...runOptions(stack) });
}
