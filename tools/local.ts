import { spawn } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Stack, UpResult } from "@pulumi/pulumi/automation";
import type { Credentials } from "../infra/components/credentials";
import type { TenantSummary } from "../infra/components/tenant";
import type { StackConfig } from "../infra/config";
import { renderFleetHba } from "../infra/hba";
import type { Tenant } from "../infra/manifest";
import { buildFleetModel } from "../infra/model";
import { LOGIN_KINDS, LoginKind } from "../infra/naming";
import {
  dataDirVersion,
  EMBEDDED_VERSIONS,
  RunningCluster,
  startCluster,
  stopClusterDir,
} from "./cluster";
import { findPgTool } from "./lib/dump";
import { buildEngine } from "./engine";
import {
  CommandError,
  CommandIo,
  EXIT,
  findTenant,
  loadContext,
  processIo,
  runCommand,
  UsageError,
} from "./lib/cli";
import {
  changedNothing,
  describeChanges,
  openStack,
  previewThenUp,
  runEnv,
  StackRun,
  writeWorkspace,
} from "./lib/deploy";
import { Engine, engineChoice, findEngine, findInstalledCli, goVersion } from "./lib/engine";
import { firstTemplateOf } from "./lib/migrations/files";
import { ensureTemplates } from "./migrate";
import { deployedPoolers, stopLocalPoolers, syncLocalPoolers } from "./pooler";
import { loadStack, readStackFile } from "./stack";

/**
 * `npm run local` (`up`): the local stack on embedded PostgreSQL, deployed by the real Pulumi
 * engine. Starts one cluster per tier of stacks/Pulumi.local.yaml (data under `.local/`, the
 * stack's fixed ports), bootstraps each (provisioning role, template, PUBLIC's CONNECT revoked),
 * finds the engine (tools/lib/engine.ts; builds it with `npm run engine` when it is missing and
 * Go is there), then runs `pulumi up` of the `local` stack through the Automation API, with a file
 * backend under `.local/pulumi-state`, the passphrase secrets provider and the run's own stack
 * file under `.local/workspace` (the tracked stacks/Pulumi.local.yaml is only read). pg_hba.conf
 * is the stack's deployed `pgHba` output, rewritten after each successful run. It ends with what
 * exists and how to connect.
 * `npm run local -- url <tenant> <rw|ro>` prints one login's connection URL (the only place a
 * local password is printed). `npm run local:stop` (`stop`) stops the clusters; data stays.
 *
 * Generated passwords and the state passphrase live in `.local/state.json` (mode 0600).
 * PGTENANTS_LOCAL_DIR and PGTENANTS_LOCAL_PORT_BASE move the data and the ports (tests use them
 * to stay off the fixed ports).
 */

export const LOCAL_STACK = "local";
const USAGE =
  "npm run local | npm run local -- url <tenant> <rw|ro> [--pooler] | npm run local -- pulumi <args...> | npm run local:stop   (tools/local.ts up|url|pulumi|stop)";

export const INSTALL_HINT = "curl -fsSL https://get.pulumi.com | sh";

export interface LocalClusterState {
  port: number;
  /** Relative to the local folder. */
  dataDir: string;
  superuserPassword: string;
  provisionerPassword: string;
}

/** `.local/state.json`: everything generated for the local clusters; secret, never printed. */
export interface LocalState {
  clusters: Record<string, LocalClusterState>;
  pulumiPassphrase: string;
  /**
   * The PostgreSQL version of the local clusters, chosen at their first start (localVersion)
   * and kept: a data directory cannot change version.
   */
  pgVersion?: 15 | 17;
}

/**
 * The version the local clusters run: the newest embedded one this machine's pg_dump can dump
 * (pg_dump refuses a newer server), so backup, restore and offboard work on the local stack
 * wherever `npm ci` ran; without any pg_dump the newest. Existing data keeps its version.
 */
export function localVersion(
  existing: (15 | 17 | undefined)[],
  pgDumpMajor: number | undefined,
): { version: 15 | 17; why: string } {
  const kept = existing.find((v) => v !== undefined);
  if (kept !== undefined) return { version: kept, why: "the version of the existing data" };
  if (pgDumpMajor === undefined)
    return {
      version: EMBEDDED_VERSIONS[0],
      why: "no pg_dump found: backup, restore and offboard need postgresql-client-17 (moves do not)",
    };
  const fit = EMBEDDED_VERSIONS.find((v) => v <= pgDumpMajor);
  return fit === undefined
    ? {
        version: EMBEDDED_VERSIONS[EMBEDDED_VERSIONS.length - 1],
        why: `pg_dump ${pgDumpMajor} is older than every embedded version: backup, restore and offboard need postgresql-client-${EMBEDDED_VERSIONS[EMBEDDED_VERSIONS.length - 1]} or newer`,
      }
    : { version: fit, why: `the newest embedded version pg_dump ${pgDumpMajor} can dump` };
}

export function localDir(root: string, env: NodeJS.ProcessEnv): string {
  const dir = env.PGTENANTS_LOCAL_DIR;
  return path.resolve(root, dir === undefined || dir === "" ? ".local" : dir);
}

/** The port of each tier: the stack's, or consecutive ports from PGTENANTS_LOCAL_PORT_BASE. */
export function localPorts(cfg: StackConfig, env: NodeJS.ProcessEnv): Record<string, number> {
  const base = env.PGTENANTS_LOCAL_PORT_BASE;
  const tiers = Object.keys(cfg.clusters);
  if (base === undefined || base === "")
    return Object.fromEntries(tiers.map((t) => [t, cfg.clusters[t].port]));
  const n = Number(base);
  // The clusters' ports, then their poolers' (poolerPort).
  if (!Number.isInteger(n) || n < 1024 || n + 2 * tiers.length > 65535) {
    throw new UsageError(
      `PGTENANTS_LOCAL_PORT_BASE must be a port from 1024 to ${65535 - 2 * tiers.length}`,
    );
  }
  return Object.fromEntries(tiers.map((t, i) => [t, n + i]));
}

const generated = () => randomBytes(24).toString("base64url");

/** Reads the state file, adding what is missing for these tiers; written with mode 0600. */
export function loadOrCreateState(dir: string, ports: Record<string, number>): LocalState {
  const file = path.join(dir, "state.json");
  const state: LocalState = fs.existsSync(file)
    ? (JSON.parse(fs.readFileSync(file, "utf8")) as LocalState)
    : { clusters: {}, pulumiPassphrase: generated() };
  for (const [tier, port] of Object.entries(ports)) {
    const existing = state.clusters[tier];
    state.clusters[tier] = {
      port,
      dataDir: existing?.dataDir ?? tier,
      superuserPassword: existing?.superuserPassword ?? generated(),
      provisionerPassword: existing?.provisionerPassword ?? generated(),
    };
  }
  saveState(dir, state);
  return state;
}

/** Writes the state file, private from its first byte. */
function saveState(dir: string, state: LocalState): void {
  const file = path.join(dir, "state.json");
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  // Written to a private temporary file, then renamed: the secrets are never readable by others,
  // even for a moment, and an existing file with a looser mode is replaced, not reused.
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, JSON.stringify(state, null, 2) + "\n", { mode: 0o600 });
  fs.renameSync(temporary, file);
}

/** The Pulumi CLI installed the normal way: `pulumi` on PATH or in ~/.pulumi/bin. */
export function findPulumiCli(env: NodeJS.ProcessEnv): string | undefined {
  return findInstalledCli(env);
}

/** What `npm run local` prints when the clusters are up but no engine can run `pulumi up`. */
export function missingCliMessage(): string[] {
  return [
    "pulumi up was not run: no Pulumi engine (neither `npm run engine`'s in .engine/ nor a `pulumi` on PATH or in ~/.pulumi/bin), and no Go to build one.",
    "Either install Go 1.26 or newer and run `npm run local` again (it builds the engine from the pinned Go modules: npm run engine),",
    `or install the Pulumi CLI: ${INSTALL_HINT}`,
    "(see https://www.pulumi.com/docs/install/; on its first run it downloads the postgresql and random plugins, which needs internet access).",
    "The clusters keep running; stop them with `npm run local:stop`.",
  ];
}

function shown(root: string, p: string): string {
  const rel = path.relative(root, p);
  return rel === "" || rel.startsWith("..") ? p : rel;
}

/** The engine for the local stack: found, else built when Go is there; undefined otherwise. */
async function localEngine(io: CommandIo): Promise<Engine | undefined> {
  const found = findEngine(io.root, io.env);
  if (found !== undefined) return found;
  if (engineChoice(io.env) === "installed" || goVersion(io.env) === undefined) return undefined;
  await buildEngine(io.root, io);
  return findEngine(io.root, io.env);
}

/** The local stack's run: its config (ports as started) and the clusters' provisioning passwords. */
function localRun(
  io: CommandIo,
  engine: Engine,
  dir: string,
  state: LocalState,
  ports: Record<string, number>,
): StackRun {
  const raw = readStackFile(LOCAL_STACK, io.root).raw;
  const clusters = raw.clusters as Record<string, Record<string, unknown>>;
  return {
    root: io.root,
    stack: LOCAL_STACK,
    engine,
    workDir: path.join(dir, "workspace"),
    backendDir: path.join(dir, "pulumi-state"),
    passphrase: state.pulumiPassphrase,
    config: {
      ...raw,
      clusters: Object.fromEntries(
        Object.entries(clusters).map(([tier, c], i) => [
          tier,
          { ...c, port: ports[tier], ...poolerPort(c, i, Object.keys(clusters).length, io.env) },
        ]),
      ),
    },
    secrets: {
      clusterPasswords: Object.fromEntries(
        Object.entries(state.clusters).map(([tier, s]) => [tier, s.provisionerPassword]),
      ),
    },
  };
}

/**
 * Under PGTENANTS_LOCAL_PORT_BASE the poolers move too: the clusters take the first ports from
 * the base, their poolers the next ones, in the stack's order of tiers.
 */
function poolerPort(
  cluster: Record<string, unknown>,
  index: number,
  tiers: number,
  env: NodeJS.ProcessEnv,
): Record<string, unknown> {
  const base = env.PGTENANTS_LOCAL_PORT_BASE;
  const pooler = cluster.pooler as Record<string, unknown> | undefined;
  if (pooler === undefined || base === undefined || base === "") return {};
  return { pooler: { ...pooler, port: Number(base) + tiers + index } };
}

/** The stack's deployed pg_hba per cluster (its `pgHba` output), or undefined before any deploy. */
async function deployedHba(stack: Stack): Promise<Record<string, string> | undefined> {
  const outputs = await stack.outputs();
  const value = outputs.pgHba?.value as Record<string, string> | undefined;
  return value !== undefined && typeof value === "object" ? value : undefined;
}

async function up(io: CommandIo): Promise<number> {
  const ctx = loadContext(LOCAL_STACK, io.root);
  const { cfg } = ctx;
  const dir = localDir(io.root, io.env);
  const ports = localPorts(cfg, io.env);
  const state = loadOrCreateState(dir, ports);
  if (state.pgVersion === undefined) {
    let major: number | undefined;
    try {
      major = findPgTool("pg_dump", io.env).major;
    } catch {
      major = undefined;
    }
    const chosen = localVersion(
      Object.values(state.clusters).map((c) => dataDirVersion(path.join(dir, c.dataDir))),
      major,
    );
    state.pgVersion = chosen.version;
    saveState(dir, state);
    io.out(
      `local clusters run PostgreSQL ${chosen.version}: ${chosen.why} (kept in ${shown(io.root, path.join(dir, "state.json"))})`,
    );
  }
  // The bootstrap builds version 1 of the stack's template; migrate builds the later ones.
  const template = firstTemplateOf(io.root, cfg.template, LOCAL_STACK);

  const clusters: Record<string, RunningCluster> = {};
  for (const [tier, cluster] of Object.entries(cfg.clusters)) {
    const s = state.clusters[tier];
    const dataDir = path.join(dir, s.dataDir);
    clusters[tier] = await startCluster({
      tier,
      port: ports[tier],
      dataDir,
      superuserPassword: s.superuserPassword,
      provisioner: { name: cluster.username, password: s.provisionerPassword },
      template,
      persistent: true,
      server: cluster.server,
      pgVersion: state.pgVersion,
    });
    io.out(
      `cluster ${tier} ready on ${clusters[tier].host}:${clusters[tier].port} (data in ${shown(io.root, dataDir)})`,
    );
  }
  for (const line of await ensureTemplates(ctx, io)) io.out(line);

  const engine = await localEngine(io);
  if (engine === undefined) {
    // Nothing is deployed without an engine: each cluster admits its administrators only.
    const none = renderFleetHba(cfg, buildFleetModel([], cfg));
    for (const [tier, running] of Object.entries(clusters)) await running.writeHba(none[tier]);
    for (const line of missingCliMessage()) io.err(line);
    return EXIT.failed;
  }
  const stack = await openStack(localRun(io, engine, dir, state, ports));

  // pg_hba follows what is deployed, never the manifest alone: an edit that the engine then
  // refuses (a tier change, a removed tenant) must not lock anyone out before it is refused.
  const before = (await deployedHba(stack)) ?? renderFleetHba(cfg, buildFleetModel([], cfg));
  for (const [tier, running] of Object.entries(clusters)) await running.writeHba(before[tier]);

  io.out(
    `pulumi up of stack ${LOCAL_STACK} with the ${engine.kind} engine (${shown(io.root, engine.cli)})`,
  );
  let result: UpResult;
  try {
    result = await previewThenUp(stack, { onOutput: (text) => process.stdout.write(text) });
  } catch (err) {
    io.err(
      "pulumi up failed (above: the engine's own report); nothing else was changed, and pg_hba still admits what was deployed before.",
    );
    io.err(firstEngineError(err));
    return EXIT.failed;
  }
  const after = await deployedHba(stack);
  if (after !== undefined) {
    for (const [tier, running] of Object.entries(clusters)) await running.writeHba(after[tier]);
  }
  // The poolers follow what is deployed too (tools/pooler.ts).
  const poolers = deployedPoolers(await stack.outputs());
  for (const line of await syncLocalPoolers(dir, Object.keys(clusters), poolers)) io.out(line);
  const changes = result.summary.resourceChanges;
  io.out(
    changedNothing(changes)
      ? `pulumi up: nothing changed (${describeChanges(changes)})`
      : `pulumi up: ${describeChanges(changes)}`,
  );
  for (const line of summary(ctx.tenants, clusters)) io.out(line);
  return EXIT.ok;
}

/** What exists after a run: tenants per cluster and how to connect. */
function summary(tenants: readonly Tenant[], clusters: Record<string, RunningCluster>): string[] {
  const lines = [
    `local stack: ${tenants.length} tenant(s) on ${Object.keys(clusters).length} cluster(s)`,
  ];
  for (const [tier, c] of Object.entries(clusters)) {
    const on = tenants.filter((t) => t.tier === tier);
    const listed = on.map((t) => (t.state === "active" ? t.id : `${t.id} (offboarded)`));
    lines.push(`  ${tier}: ${c.host}:${c.port}  ${listed.join(", ") || "no tenants"}`);
  }
  const example = tenants.find((t) => t.state === "active")?.id ?? "<tenant>";
  lines.push(
    `connect: psql "$(npm run -s local -- url ${example} ro)"   (rw for the read-write login)`,
    `stop:    npm run local:stop`,
  );
  return lines;
}

/** The line of an engine failure that says what failed (the CLI prints `error: ...`). */
function firstEngineError(err: unknown): string {
  const text = String(
    (err as { commandResult?: { stderr?: string } }).commandResult?.stderr ??
      (err as Error).message ??
      err,
  );
  const errors = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("error:"));
  // The stack's own "preview failed" / "update failed" says less than the resource's error.
  const specific = errors.find((l) => !/^error: (preview|update) failed$/i.test(l));
  return specific ?? errors[0] ?? text.split("\n")[0];
}

/**
 * `url <tenant> <rw|ro> [--pooler]`: a connection URL of one login, password included, on
 * stdout alone; with --pooler, through the cluster's PgBouncer.
 */
async function url(
  io: CommandIo,
  tenantId: string,
  login: string,
  viaPooler = false,
): Promise<number> {
  if (!(LOGIN_KINDS as readonly string[]).includes(login))
    throw new UsageError(`expected rw or ro, got ${JSON.stringify(login)}\nusage: ${USAGE}`);
  const ctx = loadContext(LOCAL_STACK, io.root);
  findTenant(ctx, tenantId);
  const stack = await openStack(startedRun(io));
  const outputs = await stack.outputs();
  const credentials = outputs.credentials?.value as
    Record<string, Record<LoginKind, Credentials>> | undefined;
  const c = credentials?.[tenantId]?.[login as LoginKind];
  if (c === undefined) {
    throw new CommandError(
      `tenant ${tenantId} is not deployed on the local stack yet: run npm run local`,
    );
  }
  if (viaPooler) {
    const pooler = (outputs.tenants?.value as Record<string, TenantSummary> | undefined)?.[tenantId]
      ?.pooler;
    if (pooler === undefined)
      throw new CommandError(`the cluster of tenant ${tenantId} has no pooler in the local stack`);
    io.out(connectionUrl({ ...c, host: pooler.host, port: pooler.port }));
    return EXIT.ok;
  }
  io.out(connectionUrl(c));
  return EXIT.ok;
}

/** The run of the local stack as `npm run local` left it: its state, ports and engine. */
function startedRun(io: CommandIo): StackRun {
  const dir = localDir(io.root, io.env);
  const file = path.join(dir, "state.json");
  if (!fs.existsSync(file))
    throw new CommandError("the local stack was never started: run npm run local first");
  const state = JSON.parse(fs.readFileSync(file, "utf8")) as LocalState;
  const engine = findEngine(io.root, io.env);
  if (engine === undefined)
    throw new CommandError("no Pulumi engine: run npm run local first (it builds one)");
  const ports = Object.fromEntries(Object.entries(state.clusters).map(([t, c]) => [t, c.port]));
  return localRun(io, engine, dir, state, ports);
}

/**
 * `pulumi <args...>`: the engine's CLI on the local stack, with its backend, passphrase, plugins
 * and work folder (what `pulumi` in a normal project folder has), e.g. the `state delete` a tier
 * move asks for. Its output is the CLI's own; its exit code is the command's.
 */
async function pulumiCommand(io: CommandIo, args: string[]): Promise<number> {
  const run = startedRun(io);
  writeWorkspace(run);
  const child = spawn(run.engine.cli, args, {
    cwd: run.workDir,
    env: { ...process.env, ...runEnv(run) },
    stdio: "inherit",
  });
  return new Promise((resolve, reject) => {
    child.on("error", (e) =>
      reject(new CommandError(`cannot run ${run.engine.cli}: ${e.message}`)),
    );
    // A CLI ended by a signal exits as a shell reports it: 128 + the signal's number.
    child.on("close", (code, signal) =>
      resolve(code ?? 128 + (signal === null ? 0 : os.constants.signals[signal])),
    );
  });
}

/** A libpq connection URL; user, password and database percent-encoded. */
export function connectionUrl(c: Credentials): string {
  const e = encodeURIComponent;
  return `postgresql://${e(c.user)}:${e(c.password)}@${c.host}:${c.port}/${e(c.database)}?sslmode=${c.sslmode}`;
}

async function stop(io: CommandIo): Promise<number> {
  const cfg = loadStack(LOCAL_STACK, io.root);
  const dir = localDir(io.root, io.env);
  const file = path.join(dir, "state.json");
  const clusters = fs.existsSync(file)
    ? (JSON.parse(fs.readFileSync(file, "utf8")) as LocalState).clusters
    : {};
  for (const line of await stopLocalPoolers(dir, Object.keys(cfg.clusters))) io.out(line);
  for (const tier of Object.keys(cfg.clusters)) {
    const dataDir = path.join(dir, clusters[tier]?.dataDir ?? tier);
    const stopped = fs.existsSync(dataDir) && stopClusterDir(dataDir);
    io.out(
      stopped
        ? `cluster ${tier} stopped (data kept in ${shown(io.root, dataDir)})`
        : `cluster ${tier} is not running`,
    );
  }
  return EXIT.ok;
}

export async function main(argv: string[], io: CommandIo = processIo()): Promise<number> {
  return runCommand(io, async () => {
    // `npm run local` alone means up.
    const [command, ...rest] = argv.length === 0 ? ["up"] : argv;
    if (command === "url") {
      const viaPooler = rest.length === 3 && rest[2] === "--pooler";
      if (rest.length !== 2 && !viaPooler)
        throw new UsageError(
          `url takes a tenant id, rw or ro, and --pooler if wanted\nusage: ${USAGE}`,
        );
      return url(io, rest[0], rest[1], viaPooler);
    }
    if (command === "pulumi") {
      if (rest.length === 0)
        throw new UsageError(`pulumi takes the CLI's arguments\nusage: ${USAGE}`);
      return pulumiCommand(io, rest);
    }
    if (rest.length > 0 || (command !== "up" && command !== "stop")) {
      throw new UsageError(`expected up, stop, url or pulumi\nusage: ${USAGE}`);
    }
    return command === "up" ? up(io) : stop(io);
  });
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
