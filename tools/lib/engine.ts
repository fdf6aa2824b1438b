import { spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/**
 * The Pulumi engine the tools run: the CLI and the provider plugins. Two kinds exist:
 *
 * - `built`: what `npm run engine` builds from the Go modules pinned in engine/ into `.engine/`
 *   (the CLI, the postgresql and random plugins, installed into `.engine/home` so that the CLI
 *   never downloads anything);
 * - `installed`: a `pulumi` on PATH or in ~/.pulumi/bin, the normal Pulumi installation, which
 *   fetches its plugins itself.
 *
 * `PGTENANTS_ENGINE=built|installed` chooses one; unset, the built engine wins when it is
 * complete (its versions are the ones package.json pins), else the installed one.
 */

/** What each binary is built from, and the version the npm SDKs ask the engine for. */
export const ENGINE_PARTS = [
  {
    name: "pulumi",
    module: "cli",
    pkg: "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi",
    version: "3.248.0",
    ldflags: ["-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v3.248.0"],
  },
  {
    name: "pulumi-resource-postgresql",
    module: "postgresql",
    pkg: "./cmd/pulumi-resource-postgresql",
    version: "3.18.1",
    plugin: "postgresql",
    tfgen: "./cmd/pulumi-tfgen-postgresql",
    ldflags: [],
  },
  {
    name: "pulumi-resource-random",
    module: "random",
    pkg: "./cmd/pulumi-resource-random",
    version: "4.21.2",
    plugin: "random",
    tfgen: "./cmd/pulumi-tfgen-random",
    ldflags: [],
  },
] as const;

export type EnginePart = (typeof ENGINE_PARTS)[number];

/** The CLI version the Automation API of @pulumi/pulumi 3.248.0 expects. */
export const CLI_VERSION = ENGINE_PARTS[0].version;

/** The Node.js policy-pack runner the CLI starts when no nodejs language plugin is installed. */
export const POLICY_ANALYZER = "pulumi-analyzer-policy-nodejs";

export interface EngineLayout {
  /** `.engine/`: everything built, never committed. */
  dir: string;
  /** The CLI and the policy analyzer; put on PATH for the CLI's child processes. */
  bin: string;
  /** The plugin binaries as built (installed copies live under home). */
  plugins: string;
  /** PULUMI_HOME of the built engine: its plugin cache. */
  home: string;
  /** Build records: one JSON per binary with the fingerprint it was built from. */
  records: string;
}

export function engineLayout(root: string): EngineLayout {
  const dir = path.join(root, ".engine");
  return {
    dir,
    bin: path.join(dir, "bin"),
    plugins: path.join(dir, "plugins"),
    home: path.join(dir, "home"),
    records: path.join(dir, "records"),
  };
}

/** An engine the tools can run. */
export interface Engine {
  kind: "built" | "installed";
  /** The `pulumi` executable. */
  cli: string;
  /** Variables the CLI runs with (PULUMI_HOME, no plugin downloads, PATH for the analyzer). */
  env: Record<string, string>;
}

/** Each module's sources: what decides whether a built binary is current. */
function moduleFiles(moduleDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs
      .readdirSync(dir, { withFileTypes: true })
      .sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (/\.go$|^go\.(mod|sum)$/.test(entry.name)) out.push(p);
    }
  };
  walk(moduleDir);
  return out;
}

/**
 * A binary's fingerprint: its module's go.mod, go.sum and Go sources (the shim module's too),
 * the Go version and the build flags. Equal fingerprints build equal binaries.
 */
export function fingerprint(root: string, part: EnginePart, goVersion: string): string {
  const hash = createHash("sha256");
  hash.update(`${part.name}\0${part.version}\0${goVersion}\0${buildFlags(part).join(" ")}\0`);
  for (const file of moduleFiles(path.join(root, "engine", part.module))) {
    hash.update(path.relative(root, file) + "\0");
    hash.update(fs.readFileSync(file));
  }
  return hash.digest("hex");
}

/** Flags of every build: reproducible paths, release tags, stripped symbols, the version. */
export function buildFlags(part: EnginePart): string[] {
  return [
    "-trimpath",
    "-tags",
    "osusergo,grpcnotrace",
    "-ldflags",
    ["-s", "-w", ...part.ldflags].join(" "),
  ];
}

interface BuildRecord {
  name: string;
  version: string;
  fingerprint: string;
  seconds: number;
  builtAt: string;
}

export function readRecord(layout: EngineLayout, name: string): BuildRecord | undefined {
  try {
    return JSON.parse(
      fs.readFileSync(path.join(layout.records, `${name}.json`), "utf8"),
    ) as BuildRecord;
  } catch {
    return undefined;
  }
}

export function writeRecord(layout: EngineLayout, record: BuildRecord): void {
  fs.mkdirSync(layout.records, { recursive: true });
  fs.writeFileSync(
    path.join(layout.records, `${record.name}.json`),
    JSON.stringify(record, null, 2) + "\n",
  );
}

/** Where a part's binary is built to. */
export function binaryPath(layout: EngineLayout, part: EnginePart): string {
  return path.join(part.name === "pulumi" ? layout.bin : layout.plugins, part.name);
}

/** The plugin folder `pulumi plugin install --file` creates under PULUMI_HOME. */
function installedPluginPath(layout: EngineLayout, plugin: string, version: string): string {
  return path.join(
    layout.home,
    "plugins",
    `resource-${plugin}-v${version}`,
    `pulumi-resource-${plugin}`,
  );
}

/** True when every binary is built and every plugin installed (versions as pinned). */
export function builtEngineComplete(root: string): boolean {
  const layout = engineLayout(root);
  for (const part of ENGINE_PARTS) {
    const record = readRecord(layout, part.name);
    if (record === undefined || record.version !== part.version) return false;
    if (!isExecutable(binaryPath(layout, part))) return false;
    if ("plugin" in part && !isExecutable(installedPluginPath(layout, part.plugin, part.version)))
      return false;
  }
  return isExecutable(path.join(layout.bin, POLICY_ANALYZER));
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** `pulumi` on PATH, else where get.pulumi.com installs it; undefined if absent. */
export function findInstalledCli(env: NodeJS.ProcessEnv, exclude?: string): string | undefined {
  const dirs = (env.PATH ?? "").split(path.delimiter).filter((d) => d !== "");
  dirs.push(path.join(env.PULUMI_HOME ?? path.join(env.HOME ?? os.homedir(), ".pulumi"), "bin"));
  for (const dir of dirs) {
    if (exclude !== undefined && path.resolve(dir) === path.resolve(exclude)) continue;
    const candidate = path.join(dir, process.platform === "win32" ? "pulumi.exe" : "pulumi");
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

export type EngineChoice = "built" | "installed" | "auto";

/** Reads PGTENANTS_ENGINE; anything but built/installed/empty is refused with what is allowed. */
export function engineChoice(env: NodeJS.ProcessEnv): EngineChoice {
  const value = env.PGTENANTS_ENGINE ?? "";
  if (value === "") return "auto";
  if (value === "built" || value === "installed") return value;
  throw new Error(
    `PGTENANTS_ENGINE=${JSON.stringify(value)} is not allowed: use built (npm run engine's), installed (pulumi on PATH) or leave it unset`,
  );
}

/** The engine to run, by PGTENANTS_ENGINE and what is present; undefined when none is. */
export function findEngine(root: string, env: NodeJS.ProcessEnv): Engine | undefined {
  const choice = engineChoice(env);
  const layout = engineLayout(root);
  if (choice !== "installed" && builtEngineComplete(root)) {
    return {
      kind: "built",
      cli: path.join(layout.bin, "pulumi"),
      env: {
        PULUMI_HOME: layout.home,
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PATH: [layout.bin, env.PATH ?? ""].filter((p) => p !== "").join(path.delimiter),
      },
    };
  }
  if (choice === "built") return undefined;
  const cli = findInstalledCli(env, layout.bin);
  return cli === undefined ? undefined : { kind: "installed", cli, env: {} };
}

/** The Go toolchain's version (`go1.26.8`), or undefined when `go` is not on PATH. */
export function goVersion(env: NodeJS.ProcessEnv): string | undefined {
  const result = spawnSync("go", ["env", "GOVERSION"], { encoding: "utf8", env });
  if (result.error !== undefined || result.status !== 0) return undefined;
  return result.stdout.trim();
}

/**
 * The one line a failed `go` command is summed up in: a module the proxy does not serve is
 * named with its version; otherwise the first error line go printed.
 */
export function goFailure(stderr: string): string {
  const refused =
    /reading (\S+)\/@v\/(\S+?)\.(?:zip|mod|info): (\d{3} [A-Za-z ]+)/.exec(stderr) ??
    /reading (\S+)\/@v\/(list): (\d{3} [A-Za-z ]+)/.exec(stderr);
  if (refused !== null) {
    const url = refused[1];
    const module = unescapeModulePath(url.replace(/^[a-z]+:\/\/[^/]+\//, ""));
    const version = refused[2] === "list" ? "(any version)" : unescapeModulePath(refused[2]);
    return `the Go module proxy does not serve ${module}@${version} (${refused[3].trim()})`;
  }
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("go: downloading"));
  return lines.find((l) => /error|cannot|not|failed|missing/i.test(l)) ?? lines[0] ?? "go failed";
}

/** The module proxy escapes capitals as `!` + lower case (golang.org/x/mod/module). */
export function unescapeModulePath(escaped: string): string {
  return escaped.replace(/!([a-z])/g, (_, c: string) => c.toUpperCase());
}
