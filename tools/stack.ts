import * as fs from "fs";
import * as path from "path";
import { readInputFile } from "../infra/files";
import { parseYaml } from "../infra/manifest";
import { parseStackConfig, PROJECT, StackConfig, stackFile } from "../infra/config";
import { InputError, InputIssue } from "../infra/issues";
import { loadManifest, Tenant } from "../infra/manifest";
import { reservedNames } from "../infra/model";
import { deployments, verifyDeployment } from "../infra/shards";

/**
 * Reading a stack outside the Pulumi engine, for the commands around the program (check, hba,
 * audit, local, move, ...): the same parser the program uses, fed from stacks/Pulumi.<stack>.yaml.
 */

export interface StackFile {
  /** Config keys of the project namespace, without `pg-tenants:`; secure values left out. */
  raw: Record<string, unknown>;
  /** Keys whose value is encrypted (`secure:`) and so unreadable without the Pulumi CLI. */
  secureKeys: string[];
  /** Config of other namespaces (e.g. `aws:region`), as written. */
  other: Record<string, unknown>;
}

/** Parses stacks/Pulumi.<stack>.yaml under `root`; a missing file names the stacks there are. */
export function readStackFile(stack: string, root = process.cwd()): StackFile {
  const file = path.join(root, stackFile(stack));
  if (!fs.existsSync(file) && !isLink(file)) {
    const known = listStacks(root);
    throw new InputError(`Unknown stack ${JSON.stringify(stack)}:`, [
      {
        file: stackFile(stack),
        field: "",
        message: `not found; stacks here: ${known.join(", ") || "none"}`,
      },
    ]);
  }
  const read = readInputFile(file);
  if ("problem" in read) {
    throw new InputError(`The stack file cannot be read:`, [
      { file: stackFile(stack), field: "", message: read.problem },
    ]);
  }
  const yaml = parseYaml(read.text);
  if ("problems" in yaml) {
    throw new InputError(
      `The stack file is not valid YAML:`,
      yaml.problems.map((message) => ({ file: stackFile(stack), field: "", message })),
    );
  }
  const value = yaml.value ?? {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new InputError(`The stack file is invalid:`, [
      { file: stackFile(stack), field: "", message: "must be a mapping with a config key" },
    ]);
  }
  const doc = value as { config?: Record<string, unknown> };
  const raw: Record<string, unknown> = {};
  const other: Record<string, unknown> = {};
  const secureKeys: string[] = [];
  for (const [fullKey, value] of Object.entries(doc.config ?? {})) {
    const [namespace, key] = fullKey.includes(":") ? fullKey.split(":", 2) : [PROJECT, fullKey];
    if (namespace !== PROJECT) {
      other[fullKey] = value;
    } else if (containsSecure(value)) {
      secureKeys.push(key);
    } else {
      raw[key] = value;
    }
  }
  return { raw, secureKeys, other };
}

function isLink(file: string): boolean {
  try {
    return fs.lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

function containsSecure(value: unknown): boolean {
  if (value === null || typeof value !== "object") return false;
  if ("secure" in value) return true;
  return Object.values(value).some(containsSecure);
}

/** The stacks that have a config file in stacks/. */
export function listStacks(root = process.cwd()): string[] {
  const dir = path.join(root, "stacks");
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .sort();
}

/** The validated config of a stack, read from its file. */
export function loadStack(stack: string, root = process.cwd()): StackConfig {
  return parseStackConfig(stack, readStackFile(stack, root).raw);
}

/** The validated tenants of a stack's manifest folder. */
export function loadStackTenants(cfg: StackConfig, root = process.cwd()): Tenant[] {
  return loadManifest(path.resolve(root, cfg.tenantsDir), manifestContext(cfg), root);
}

/** What manifest validation needs from a stack config. */
export function manifestContext(cfg: StackConfig) {
  return {
    namePrefix: cfg.namePrefix,
    tiers: Object.keys(cfg.clusters),
    reservedNames: reservedNames(cfg),
    today: new Date().toISOString().slice(0, 10),
  };
}

/**
 * A tier's provisioning password for the tools: `PGTENANTS_PASSWORD_<TIER>` (tier upper-cased),
 * else the value `fallback` supplies (e.g. the local clusters' state file). Never logged.
 */
export function clusterPassword(
  tier: string,
  fallback?: (tier: string) => string | undefined,
): string {
  const envName = `PGTENANTS_PASSWORD_${tier.toUpperCase()}`;
  const value = process.env[envName] ?? fallback?.(tier);
  if (value === undefined || value === "") {
    throw new Error(
      `No provisioning password for cluster "${tier}": set ${envName} (the secret pg-tenants:clusterPasswords.${tier} of the stack).`,
    );
  }
  return value;
}

/**
 * Whether the deployment `cfg` belongs to (the stacks of stacks/ that reach one of its clusters
 * and read its tenants folder) declares every tenant in exactly one shard. A stack file that
 * does not parse is left out here: its own check reports it.
 */
export function deploymentIssues(
  cfg: StackConfig,
  tenants: readonly Tenant[],
  root = process.cwd(),
): InputIssue[] {
  const stacks: StackConfig[] = [cfg];
  for (const name of listStacks(root)) {
    if (name === cfg.stack) continue;
    try {
      stacks.push(loadStack(name, root));
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
    }
  }
  const group = deployments(stacks).find((g) => g.some((s) => s.stack === cfg.stack)) ?? [cfg];
  return verifyDeployment(group, tenants);
}

/**
 * How an operator runs the Pulumi CLI on a stack, as the commands print their next steps: the
 * local stack's through `npm run local` (the built engine has no `pulumi` on PATH; `local --
 * pulumi` gives it the stack's backend and passphrase), any other stack's as `pulumi`.
 */
export function pulumiCommands(stack: string): { cli: string; up: string } {
  return stack === "local"
    ? { cli: "npm run local -- pulumi", up: "npm run local" }
    : { cli: "pulumi", up: `pulumi up --stack ${stack}` };
}
