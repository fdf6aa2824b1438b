import { randomBytes } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { StackConfig } from "../infra/config";
import { startCluster, stopClusterDir } from "./cluster";
import { renderStackHba } from "./hba";
import { CommandIo, EXIT, loadContext, processIo, runCommand, UsageError } from "./lib/cli";
import { loadStack } from "./stack";

/**
 * `npm run local` (`up`): the local stack on embedded PostgreSQL. Starts one cluster per tier of
 * stacks/Pulumi.local.yaml (data under `.local/`, the stack's fixed ports), bootstraps each
 * (provisioning role, template, PUBLIC's CONNECT revoked), installs the pg_hba.conf rendered from
 * the manifest, then runs `pulumi up` for the `local` stack through the Automation API with a
 * file backend under `.local/pulumi-state` and the passphrase secrets provider. Without the
 * Pulumi CLI it stops once the clusters are ready and says how to get the CLI.
 * `npm run local:stop` (`stop`) stops the clusters; their data stays for the next `up`.
 *
 * Generated passwords and the state passphrase live in `.local/state.json` (mode 0600) and are
 * never printed. PGTENANTS_LOCAL_DIR and PGTENANTS_LOCAL_PORT_BASE move the data and the ports
 * (tests use them to stay off the fixed ports).
 */

export const LOCAL_STACK = "local";
const USAGE = "npm run local | npm run local:stop   (tools/local.ts up|stop)";

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
  if (!Number.isInteger(n) || n < 1024 || n + tiers.length > 65535) {
    throw new UsageError(
      `PGTENANTS_LOCAL_PORT_BASE must be a port from 1024 to ${65535 - tiers.length}`,
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
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  // Written to a private temporary file, then renamed: the secrets are never readable by others,
  // even for a moment, and an existing file with a looser mode is replaced, not reused.
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, JSON.stringify(state, null, 2) + "\n", { mode: 0o600 });
  fs.renameSync(temporary, file);
  return state;
}

/** The Pulumi CLI: `pulumi` on PATH, else where get.pulumi.com installs it; undefined if absent. */
export function findPulumiCli(env: NodeJS.ProcessEnv): string | undefined {
  const dirs = (env.PATH ?? "").split(path.delimiter).filter((d) => d !== "");
  dirs.push(path.join(env.PULUMI_HOME ?? path.join(env.HOME ?? os.homedir(), ".pulumi"), "bin"));
  for (const dir of dirs) {
    const candidate = path.join(dir, process.platform === "win32" ? "pulumi.exe" : "pulumi");
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** What `npm run local` prints when the clusters are up but `pulumi up` cannot run. */
export function missingCliMessage(): string[] {
  return [
    "pulumi up was not run: the Pulumi CLI is not installed (no `pulumi` on PATH nor in ~/.pulumi/bin).",
    "Install it, then run `npm run local` again:",
    `  ${INSTALL_HINT}`,
    "(or see https://www.pulumi.com/docs/install/). On its first run the CLI downloads the postgresql",
    "and random provider plugins, which needs internet access.",
    "The clusters keep running; stop them with `npm run local:stop`.",
  ];
}

function shown(root: string, p: string): string {
  const rel = path.relative(root, p);
  return rel === "" || rel.startsWith("..") ? p : rel;
}

async function up(io: CommandIo): Promise<number> {
  const ctx = loadContext(LOCAL_STACK, io.root);
  const { cfg } = ctx;
  const dir = localDir(io.root, io.env);
  const ports = localPorts(cfg, io.env);
  const state = loadOrCreateState(dir, ports);
  const hba = renderStackHba(cfg, ctx.tenants);
  const templateSql = path.join(io.root, "templates", `${cfg.template}.sql`);
  if (!fs.existsSync(templateSql)) {
    throw new UsageError(
      `the template ${cfg.template} of stack ${LOCAL_STACK} has no SQL file: ${shown(io.root, templateSql)}`,
    );
  }

  for (const [tier, cluster] of Object.entries(cfg.clusters)) {
    const s = state.clusters[tier];
    const dataDir = path.join(dir, s.dataDir);
    const running = await startCluster({
      tier,
      port: ports[tier],
      dataDir,
      superuserPassword: s.superuserPassword,
      provisioner: { name: cluster.username, password: s.provisionerPassword },
      template: { name: cfg.template, sqlFile: templateSql },
      persistent: true,
    });
    await running.writeHba(hba[tier]);
    io.out(
      `cluster ${tier} ready on ${running.host}:${running.port} (data in ${shown(io.root, dataDir)})`,
    );
  }

  const cli = findPulumiCli(io.env);
  if (cli === undefined) {
    for (const line of missingCliMessage()) io.err(line);
    return EXIT.failed;
  }
  const overridden = Object.keys(ports).some((t) => ports[t] !== cfg.clusters[t].port);
  if (overridden) {
    throw new UsageError(
      "PGTENANTS_LOCAL_PORT_BASE moves the clusters off the stack's ports; unset it to run pulumi up",
    );
  }
  return pulumiUp(io, cli, dir, state);
}

async function pulumiUp(
  io: CommandIo,
  cli: string,
  dir: string,
  state: LocalState,
): Promise<number> {
  const { LocalWorkspace, PulumiCommand } = await import("@pulumi/pulumi/automation");
  const onPath = (io.env.PATH ?? "").split(path.delimiter).includes(path.dirname(cli));
  const pulumiCommand = await PulumiCommand.get(
    onPath ? {} : { root: path.dirname(path.dirname(cli)) },
  );
  const backend = path.join(dir, "pulumi-state");
  fs.mkdirSync(backend, { recursive: true });
  const stack = await LocalWorkspace.createOrSelectStack(
    { stackName: LOCAL_STACK, workDir: io.root },
    {
      pulumiCommand,
      secretsProvider: "passphrase",
      envVars: {
        PULUMI_BACKEND_URL: `file://${backend}`,
        PULUMI_CONFIG_PASSPHRASE: state.pulumiPassphrase,
      },
    },
  );
  for (const [tier, s] of Object.entries(state.clusters)) {
    await stack.setConfig(
      `pg-tenants:clusterPasswords.${tier}`,
      { value: s.provisionerPassword, secret: true },
      true,
    );
  }
  io.out(`pulumi up for stack ${LOCAL_STACK} (state in ${shown(io.root, backend)})`);
  const result = await stack.up({ onOutput: (text) => process.stdout.write(text) });
  io.out(`pulumi up: ${result.summary.result}`);
  return result.summary.result === "succeeded" ? EXIT.ok : EXIT.failed;
}

async function stop(io: CommandIo): Promise<number> {
  const cfg = loadStack(LOCAL_STACK, io.root);
  const dir = localDir(io.root, io.env);
  const file = path.join(dir, "state.json");
  const clusters = fs.existsSync(file)
    ? (JSON.parse(fs.readFileSync(file, "utf8")) as LocalState).clusters
    : {};
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
    const [command, ...rest] = argv;
    if (rest.length > 0 || (command !== "up" && command !== "stop")) {
      throw new UsageError(`expected up or stop\nusage: ${USAGE}`);
    }
    return command === "up" ? up(io) : stop(io);
  });
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
