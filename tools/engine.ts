import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
  binaryPath,
  buildFlags,
  CLI_VERSION,
  EngineLayout,
  engineLayout,
  ENGINE_PARTS,
  EnginePart,
  fingerprint,
  goFailure,
  goVersion,
  POLICY_ANALYZER,
  readRecord,
  writeRecord,
} from "./lib/engine";
import { CommandError, CommandIo, EXIT, processIo, readCommandArgs, runCommand } from "./lib/cli";

/**
 * `npm run engine`: builds the Pulumi engine from the Go modules pinned in engine/ (one go.mod
 * and go.sum per binary) into `.engine/`, then installs the plugins into `.engine/home` so that
 * the CLI never downloads anything. What is built already at the same fingerprint (sources,
 * go.sum, Go version, flags) is skipped, so a second run takes seconds.
 */

/** The oldest Go the modules build with (engine/postgresql/go.mod says go 1.26.0). */
const MIN_GO = [1, 26, 0];

interface Step {
  out: (line: string) => void;
  started: number;
}

const seconds = (from: number) => ((Date.now() - from) / 1000).toFixed(1);

/** Runs a command; resolves with its output, or rejects with goFailure's one line and a log file. */
function runLogged(
  command: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; log: string; what: string; step: Step },
): Promise<string> {
  fs.mkdirSync(path.dirname(opts.log), { recursive: true });
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: opts.cwd, env: opts.env, stdio: "pipe" });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    // A cold build is long: say it is still going once a minute, so CI logs show progress.
    const ticker = setInterval(
      () => opts.step.out(`  ... ${opts.what}: ${seconds(opts.step.started)} s`),
      60_000,
    );
    child.on("error", (err) => {
      clearInterval(ticker);
      reject(new CommandError(`${opts.what}: ${err.message}`));
    });
    child.on("close", (code) => {
      clearInterval(ticker);
      fs.writeFileSync(opts.log, `$ ${command} ${args.join(" ")}\n${stdout}${stderr}`);
      if (code === 0) resolve(stdout);
      else
        reject(
          new CommandError(
            `${opts.what} failed: ${goFailure(stderr)} (full log: ${path.relative(process.cwd(), opts.log) || opts.log})`,
          ),
        );
    });
  });
}

function goEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    ...env,
    // go.sum pins every module; a build never edits go.mod or fetches another toolchain.
    GOFLAGS: "-mod=readonly -buildvcs=false",
    GOTOOLCHAIN: env.GOTOOLCHAIN ?? "local",
  };
}

function checkGo(env: NodeJS.ProcessEnv): string {
  const version = goVersion(env);
  if (version === undefined) {
    throw new CommandError(
      "Go is not installed (no `go` on PATH): install Go 1.26 or newer (https://go.dev/dl/), or install the Pulumi CLI (https://www.pulumi.com/docs/install/) and skip npm run engine",
    );
  }
  const parts = /^go(\d+)\.(\d+)(?:\.(\d+))?/.exec(version);
  const have =
    parts === null ? [0, 0, 0] : [Number(parts[1]), Number(parts[2]), Number(parts[3] ?? 0)];
  const older = have.findIndex((n, i) => n !== MIN_GO[i]);
  if (older !== -1 && have[older] < MIN_GO[older]) {
    throw new CommandError(
      `${version} is too old: the engine modules need go${MIN_GO.join(".")} or newer`,
    );
  }
  return version;
}

/** Writes the plugin's schema (and bridge metadata) where its main embeds them, via its tfgen. */
async function generateSchema(
  root: string,
  layout: EngineLayout,
  part: Extract<EnginePart, { tfgen: string }>,
  env: NodeJS.ProcessEnv,
  step: Step,
): Promise<void> {
  const moduleDir = path.join(root, "engine", part.module);
  const tfgen = path.join(layout.dir, "build", `pulumi-tfgen-${part.plugin}`);
  await runLogged("go", ["build", ...buildFlags(part), "-o", tfgen, part.tfgen], {
    cwd: moduleDir,
    env,
    log: path.join(layout.dir, "logs", `pulumi-tfgen-${part.plugin}.log`),
    what: `building pulumi-tfgen-${part.plugin}`,
    step,
  });
  const out = path.join(layout.dir, "build", `schema-${part.plugin}`);
  fs.rmSync(out, { recursive: true, force: true });
  await runLogged(tfgen, ["schema", "--skip-examples", "--out", out], {
    cwd: moduleDir,
    env,
    log: path.join(layout.dir, "logs", `schema-${part.plugin}.log`),
    what: `generating the ${part.plugin} schema`,
    step,
  });
  const mainDir = path.join(moduleDir, part.pkg);
  // tfgen leaves the version out of the schema; the plugin reports the one the SDK asks for.
  const schema = JSON.parse(fs.readFileSync(path.join(out, "schema.json"), "utf8")) as Record<
    string,
    unknown
  >;
  fs.writeFileSync(
    path.join(mainDir, "schema.json"),
    JSON.stringify({ ...schema, version: part.version }, null, 4) + "\n",
  );
  const metadata = path.join(out, "bridge-metadata.json");
  if (fs.existsSync(metadata))
    fs.copyFileSync(metadata, path.join(mainDir, "bridge-metadata.json"));
}

async function buildPart(
  root: string,
  layout: EngineLayout,
  part: EnginePart,
  env: NodeJS.ProcessEnv,
  step: Step,
): Promise<void> {
  if ("tfgen" in part) await generateSchema(root, layout, part, env, step);
  const target = binaryPath(layout, part);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  await runLogged("go", ["build", ...buildFlags(part), "-o", target, part.pkg], {
    cwd: path.join(root, "engine", part.module),
    env,
    log: path.join(layout.dir, "logs", `${part.name}.log`),
    what: `building ${part.name}`,
    step,
  });
}

/** The script the CLI runs for a Node.js policy pack when no nodejs language plugin exists. */
function policyAnalyzerScript(): string {
  return [
    "#!/bin/sh",
    "# Written by npm run engine. The Pulumi CLI runs pulumi-analyzer-policy-<runtime> with the",
    "# engine address and the policy pack folder (its working directory) when no language plugin",
    "# for the pack's runtime is installed; the pack's own @pulumi/pulumi runs the policies.",
    `exec "${process.execPath}" "$PWD/node_modules/@pulumi/pulumi/cmd/run-policy-pack" "$@"`,
    "",
  ].join("\n");
}

async function installPlugins(
  layout: EngineLayout,
  env: NodeJS.ProcessEnv,
  rebuilt: Set<string>,
  step: Step,
): Promise<string[]> {
  const cli = path.join(layout.bin, "pulumi");
  const installed: string[] = [];
  for (const part of ENGINE_PARTS) {
    if (!("plugin" in part)) continue;
    const dir = path.join(layout.home, "plugins", `resource-${part.plugin}-v${part.version}`);
    const present = fs.existsSync(path.join(dir, part.name));
    if (present && !rebuilt.has(part.name)) continue;
    await runLogged(
      cli,
      [
        "plugin",
        "install",
        "resource",
        part.plugin,
        part.version,
        "--file",
        binaryPath(layout, part),
        ...(present ? ["--reinstall"] : []),
      ],
      {
        cwd: layout.dir,
        env: { ...env, PULUMI_HOME: layout.home, PULUMI_SKIP_UPDATE_CHECK: "true" },
        log: path.join(layout.dir, "logs", `install-${part.plugin}.log`),
        what: `installing the ${part.plugin} plugin`,
        step,
      },
    );
    installed.push(`${part.plugin} ${part.version}`);
  }
  fs.writeFileSync(path.join(layout.bin, POLICY_ANALYZER), policyAnalyzerScript(), { mode: 0o755 });
  return installed;
}

/** Builds what is missing or stale; returns the names it built. */
export async function buildEngine(
  root: string,
  io: Pick<CommandIo, "out" | "env">,
  opts: { force?: boolean } = {},
): Promise<string[]> {
  const layout = engineLayout(root);
  const started = Date.now();
  const env = goEnv(io.env);
  const go = checkGo(env);
  io.out(
    `engine: the Pulumi CLI ${CLI_VERSION} and the postgresql and random plugins, built with ${go} into ${path.relative(root, layout.dir)}/ (a first build downloads about 600 Go modules and takes several minutes: 6.4 on an idle 2-core machine, 47 on a busy one; later runs take seconds)`,
  );
  const rebuilt = new Set<string>();
  for (const [i, part] of ENGINE_PARTS.entries()) {
    const stepStart = Date.now();
    const step: Step = { out: io.out, started: stepStart };
    const print = fingerprint(root, part, go);
    const record = readRecord(layout, part.name);
    const label = `[${i + 1}/${ENGINE_PARTS.length + 1}] ${part.name} ${part.version}`;
    if (
      !opts.force &&
      record?.fingerprint === print &&
      record.version === part.version &&
      fs.existsSync(binaryPath(layout, part))
    ) {
      io.out(`${label}: up to date (built ${record.builtAt}, ${record.seconds} s)`);
      continue;
    }
    io.out(`${label}: building ...`);
    await buildPart(root, layout, part, env, step);
    const took = Number(seconds(stepStart));
    writeRecord(layout, {
      name: part.name,
      version: part.version,
      fingerprint: print,
      seconds: took,
      builtAt: new Date().toISOString(),
    });
    rebuilt.add(part.name);
    io.out(`${label}: built in ${took} s`);
  }
  const installStart = Date.now();
  const installed = await installPlugins(layout, env, rebuilt, {
    out: io.out,
    started: installStart,
  });
  io.out(
    `[${ENGINE_PARTS.length + 1}/${ENGINE_PARTS.length + 1}] plugins in ${path.relative(root, layout.home)}: ${installed.length > 0 ? `installed ${installed.join(", ")}` : "up to date"} (${seconds(installStart)} s)`,
  );
  io.out(
    `engine: ready in ${seconds(started)} s (${path.relative(root, path.join(layout.bin, "pulumi"))})`,
  );
  return [...rebuilt];
}

export async function main(argv: string[], io: CommandIo = processIo()): Promise<number> {
  return runCommand(io, async () => {
    const args = readCommandArgs(argv, "engine");
    await buildEngine(io.root, io, { force: args.flag("force") });
    return EXIT.ok;
  });
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
