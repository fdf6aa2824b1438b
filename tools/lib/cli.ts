import * as fs from "fs";
import * as path from "path";
import { parseArgs, ParseArgsConfig } from "util";
import type { StackConfig } from "../../infra/config";
import { formatIssue, InputError } from "../../infra/issues";
import type { Tenant } from "../../infra/manifest";
import { buildTenantModel, TenantModel } from "../../infra/model";
import { assignment, deployments, tenantsOfShard } from "../../infra/shards";
import { listStacks, loadStack, loadStackTenants } from "../stack";

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
}

export function processIo(): CommandIo {
  return {
    root: process.cwd(),
    out: (line) => process.stdout.write(line + "\n"),
    err: (line) => process.stderr.write(line + "\n"),
    env: process.env,
    now: () => new Date(),
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

/** Parses argv with node's parseArgs; unknown options and missing values are usage errors. */
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
      io.err(e.message);
      return EXIT.usage;
    }
    if (e instanceof InputError) {
      io.err(e.summary);
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

/** The one positional argument a command takes (a tenant id), or a usage error. */
export function tenantArg(positionals: string[], usage: string): string {
  if (positionals.length < 1) throw new UsageError(`missing tenant id\nusage: ${usage}`);
  return positionals[0];
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
