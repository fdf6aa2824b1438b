import * as fs from "fs";
import * as path from "path";
import { parseArgs, ParseArgsConfig } from "util";
import type { StackConfig } from "../../infra/config";
import { formatIssue, InputError } from "../../infra/issues";
import type { Tenant } from "../../infra/manifest";
import { buildTenantModel, TenantModel } from "../../infra/model";
import { assignment, deployments, tenantsOfShard } from "../../infra/shards";
import { listStacks, loadStack, loadStackTenants } from "../stack";
import { command, usageLine } from "../commands";
import { colourError, progressOn, useColour } from "./progress";

/**
 * What the day-two commands (audit, move, offboard, backup, restore) share: argument parsing,
 * the stack and manifest they act on, output streams, and the exit codes.
 */

/** Where a command runs and writes; tests pass their own, the command line passes the process's. */
export interface CommandIo {
  /** The project root: stacks/ and the tenants folder are read relative to it. */
  root: string;
  out: (line: string) => void;
  err: (line: string) => void;
  env: NodeJS.ProcessEnv;
  /** Today, for retention arithmetic and file names. */
  now: () => Date;
  /** A step of long work (tools/lib/progress.ts); none where the caller keeps only results. */
  progress?: (message: string) => void;
}

export function processIo(): CommandIo {
  const progress = progressOn(process.stderr);
  const colour = useColour(process.stderr, process.env);
  return {
    root: process.cwd(),
    out: (line) => {
      progress.clear();
      process.stdout.write(line + "\n");
    },
    err: (line) => {
      progress.clear();
      process.stderr.write(colourError(line, colour) + "\n");
    },
    env: process.env,
    now: () => new Date(),
    progress: (message) => progress.step(message),
  };
}

/** A failure the user can act on: printed as is, without a stack trace. */
export class CommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CommandError";
  }
}

/** Exit codes: 0 done, 1 the command found violations or failed, 2 bad usage or input. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/**
 * Parses argv with node's parseArgs against options given here; unknown options and missing
 * values are usage errors. For commands outside tools/commands.js (readCommandArgs reads those).
 */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig["options"]>>(
  argv: string[],
  options: T,
  usage: string,
) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\nusage: ${usage}`);
  }
}

/** A command's arguments, read against its entry in tools/commands.js. */
export interface CommandArgs {
  positionals: string[];
  /** The usage line, for messages about a value the command refuses. */
  usage: string;
  /** A string option's value (its default when it has one), or undefined. */
  text(name: string): string | undefined;
  /** A string option that has a default or is required: always a value. */
  value(name: string): string;
  /** A boolean option. */
  flag(name: string): boolean;
  /** A repeatable option's values. */
  list(name: string): string[];
}

/**
 * Parses argv against the command's options and arguments in tools/commands.js: unknown
 * options, missing values, missing required options and arguments, and extra positional
 * arguments are usage errors that name the usage line.
 */
export function readCommandArgs(argv: string[], name: string): CommandArgs {
  const spec = command(name);
  const usage = usageLine(spec);
  const options = Object.fromEntries(
    Object.entries(spec.options).map(([key, o]) => [
      key,
      {
        type: o.type,
        ...(o.default !== undefined ? { default: o.default } : {}),
        ...(o.multiple === true ? { multiple: true } : {}),
      },
    ]),
  ) as NonNullable<ParseArgsConfig["options"]>;
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\nusage: ${usage}`);
  }
  const { values, positionals } = parsed;
  for (const [key, o] of Object.entries(spec.options)) {
    if (o.required === true && values[key] === undefined) {
      throw new UsageError(`missing --${key}\nusage: ${usage}`);
    }
  }
  const missing = spec.args.slice(positionals.length).find((a) => a.required);
  if (missing !== undefined) throw new UsageError(`missing ${missing.name}\nusage: ${usage}`);
  if (positionals.length > spec.args.length) {
    throw new UsageError(
      `unexpected argument ${JSON.stringify(positionals[spec.args.length])}\nusage: ${usage}`,
    );
  }
  const text = (key: string) => {
    const v = values[key];
    return typeof v === "string" ? v : undefined;
  };
  return {
    positionals,
    usage,
    text,
    value: (key) => {
      const v = text(key);
      if (v === undefined) throw new UsageError(`missing --${key}\nusage: ${usage}`);
      return v;
    },
    flag: (key) => values[key] === true,
    list: (key) => {
      const v = values[key];
      return Array.isArray(v) ? (v as string[]) : typeof v === "string" ? [v] : [];
    },
  };
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Runs a command body and turns its errors into a message on stderr and an exit code. */
export async function runCommand(io: CommandIo, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`error: ${e.message}`);
      return EXIT.usage;
    }
    if (e instanceof InputError) {
      io.err(`error: ${e.summary}`);
      for (const issue of e.issues) io.err(`  - ${formatIssue(issue)}`);
      return EXIT.usage;
    }
    io.err(`error: ${(e as Error).message}`);
    return EXIT.failed;
  }
}

/** The stack and its validated manifest, as every day-two command starts. */
export interface StackContext {
  cfg: StackConfig;
  tenants: Tenant[];
  root: string;
}

export function loadContext(stack: string, root: string): StackContext {
  const cfg = loadStack(stack, root);
  return { cfg, tenants: loadStackTenants(cfg, root), root };
}

/** The tenant with this id and its model; an unknown id names the tenants there are. */
export function findTenant(ctx: StackContext, id: string): { tenant: Tenant; model: TenantModel } {
  const tenant = ctx.tenants.find((t) => t.id === id);
  if (tenant === undefined) {
    const known = ctx.tenants.map((t) => t.id);
    throw new CommandError(
      `unknown tenant ${JSON.stringify(id)}: no ${path.join(ctx.cfg.tenantsDir, `${id}.yaml`)} in stack ${ctx.cfg.stack}'s manifest (tenants: ${known.join(", ") || "none"})`,
    );
  }
  if (tenantsOfShard(ctx.cfg, [tenant]).length === 0) {
    const owners = declaringStacks(ctx, tenant);
    throw new CommandError(
      `tenant ${id} is not in stack ${ctx.cfg.stack}'s shard: ${owners.length > 0 ? `stack ${owners.join(", ")} declares it; run the command with --stack ${owners[0]}` : "no stack of this deployment declares it"}`,
    );
  }
  return { tenant, model: buildTenantModel(tenant, ctx.cfg) };
}

/** Which tenant of the stack's manifest a role belongs to, for messages that name a session's tenant. */
export function tenantOfRole(ctx: StackContext): (role: string) => string | undefined {
  const byRole = new Map<string, string>();
  for (const t of ctx.tenants) {
    for (const r of buildTenantModel(t, ctx.cfg).roles) byRole.set(r.name, t.id);
  }
  return (role) => byRole.get(role);
}

/** The stacks of ctx's deployment (same clusters, same tenants folder) whose shard holds the tenant. */
function declaringStacks(ctx: StackContext, tenant: Tenant): string[] {
  const stacks: StackConfig[] = [ctx.cfg];
  for (const name of listStacks(ctx.root)) {
    if (name === ctx.cfg.stack) continue;
    try {
      stacks.push(loadStack(name, ctx.root));
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
    }
  }
  const group = deployments(stacks).find((g) => g.some((s) => s.stack === ctx.cfg.stack)) ?? [];
  return assignment(group, [tenant]).get(tenant.id) ?? [];
}

/** Creates the folder of a file the command writes (dumps, manifests), readable by its owner only. */
export function ensureParent(file: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
}

/** Dumps hold tenant data: files written by a tool under the default umask become owner-only. */
export function restrictFile(file: string): void {
  fs.chmodSync(file, 0o600);
}

/** `20261126T064500Z`: sortable, safe in file names. */
export function fileStamp(at: Date): string {
  return at
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
}
