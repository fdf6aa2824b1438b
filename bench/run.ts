import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { EvaluateResult } from "./workers/evaluate";
import { benchClientOverhead } from "./client";
import { runEngine } from "./engine";
import { benchMigrate } from "./migrate";
import { benchPooler } from "./pooler";
import { benchMove } from "./move";
import { runChecks, runCliStart, runProvisioning, Section } from "./sections";

/**
 * `npm run bench [-- --quick] [-- --only program,provision,check,audit,client,cli,pooler,engine,engine-build,migrate,move] [-- --write]`:
 * compiles the program and the workers into dist/, then measures, each figure in a fresh child
 * process (clean peak RSS): program evaluation under the mock runtime against the
 * straightforward baseline, provisioning on real embedded clusters against raw SQL, and the
 * offline check and the audit. Prints Markdown tables; a full run (or --write) also writes each
 * section's into bench/RESULTS.md between its generated markers.
 */

const ROOT = path.join(__dirname, "..");
/** The shard size docs/scale.md recommends; the full run reports one shard of it. */
export const DEFAULT_SHARD_SIZE = 250;
const DIST = path.join(ROOT, "dist");

export interface Options {
  quick: boolean;
  only: Set<string>;
  write: boolean;
}

function parseArgs(argv: string[]): Options {
  const only = new Set<string>();
  let quick = false;
  let write: boolean | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--quick") quick = true;
    else if (a === "--write") write = true;
    else if (a === "--no-write") write = false;
    else if (a === "--only") (argv[++i] ?? "").split(",").forEach((s) => only.add(s.trim()));
    else
      throw new Error(
        `unknown argument ${a}; usage: npm run bench -- [--quick] [--only program,provision,check,audit,client,cli,pooler,engine,engine-build,migrate,move] [--write|--no-write]`,
      );
  }
  const known = [
    "program",
    "provision",
    "check",
    "audit",
    "client",
    "cli",
    "pooler",
    "engine",
    "engine-build",
    "migrate",
    "move",
  ];
  const unknown = [...only].filter((s) => !known.includes(s));
  if (unknown.length > 0)
    throw new Error(`unknown section(s) ${unknown.join(", ")}; sections: ${known.join(", ")}`);
  if (only.size === 0) known.forEach((s) => only.add(s));
  return { quick, only, write: write ?? !quick };
}

function build(): void {
  const started = Date.now();
  const tsc = path.join(ROOT, "node_modules", "typescript", "bin", "tsc");
  const r = spawnSync(
    process.execPath,
    [tsc, "-p", path.join(ROOT, "bench", "tsconfig.bench.json")],
    {
      cwd: ROOT,
      encoding: "utf8",
    },
  );
  // tsc emits despite type errors; only a missing output stops the run (npm run typecheck is the
  // gate for types, and an error in a file the measurements do not load must not stop them).
  const outputs = [
    "infra/index.js",
    "bench/workers/evaluate.js",
    "bench/workers/ts-node.js",
    "bench/support/peak.js",
    "bench/workers/app.js",
  ];
  const missing = outputs.filter((f) => !fs.existsSync(path.join(DIST, f)));
  if (missing.length > 0) {
    throw new Error(
      `compiling the program failed (missing ${missing.join(", ")}):\n${r.stdout}${r.stderr}`,
    );
  }
  if (r.status !== 0)
    console.error(`warning: tsc reported type errors (run npm run typecheck):\n${r.stdout}`);
  console.error(
    `compiled infra/ and bench/ into dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}

/** How a program is run. */
interface Mode {
  key: string;
  label: string;
  argv: (job: string) => string[];
}

const MODES: Record<string, Mode> = {
  "ts-node": {
    key: "ts-node",
    label: "ts-node (how `pulumi up` runs TypeScript: source maps on)",
    argv: (job) => [
      path.join(DIST, "bench", "workers", "ts-node.js"),
      path.join("bench", "workers", "evaluate.ts"),
      job,
    ],
  },
  js: {
    key: "js",
    label: "compiled JS, plain node (the mock runtime in a test)",
    argv: (job) => [path.join(DIST, "bench", "workers", "evaluate.js"), job],
  },
  "pulumi-js": {
    key: "pulumi-js",
    label: "compiled JS as `pulumi up` runs a JS main (its runner loads source-map-support)",
    argv: (job) => [
      path.join(DIST, "bench", "workers", "runner.js"),
      path.join(DIST, "bench", "workers", "evaluate.js"),
      job,
    ],
  },
};

interface Measurement extends EvaluateResult {
  program: string;
  mode: string;
  totalMs: number;
}

/** Runs one evaluation in a fresh node process; undefined (with the reason printed) if it failed. */
function measure(
  program: string,
  mode: Mode,
  tenants: number,
  env: NodeJS.ProcessEnv = {},
): Measurement | undefined {
  const started = Date.now();
  const r = spawnSync(process.execPath, mode.argv(JSON.stringify({ program, tenants })), {
    cwd: ROOT,
    env: { ...process.env, TS_NODE_CACHE_DIRECTORY: TS_NODE_CACHE, ...env },
    encoding: "utf8",
    maxBuffer: 16 * 1024 * 1024,
    timeout: 30 * 60 * 1000,
  });
  const totalMs = Date.now() - started;
  const line = r.stdout.trim().split("\n").pop() ?? "";
  if (r.status !== 0 || !line.startsWith("{")) {
    console.error(
      `  ${program} ${mode.key} ${tenants}: failed (${r.signal ?? `exit ${r.status}`}): ${r.stderr.trim().split("\n").slice(-5).join(" | ")}`,
    );
    return undefined;
  }
  const m = { ...(JSON.parse(line) as EvaluateResult), program, mode: mode.key, totalMs };
  console.error(
    `  ${program.padEnd(10)} ${mode.key.padEnd(9)} ${String(tenants).padStart(5)} tenants: eval ${(m.evalMs / 1000).toFixed(1)} s (cpu ${(m.evalCpuMs / 1000).toFixed(1)} s), peak RSS ${(m.maxRssKb / 1024).toFixed(0)} MB, ${m.resources} resources`,
  );
  return m;
}

/** ts-node's compile cache of this run: warmed once per program, so each row measures a run. */
const TS_NODE_CACHE = fs.mkdtempSync(path.join(os.tmpdir(), "pg-tenants-bench-ts-node-"));
process.on("exit", () => fs.rmSync(TS_NODE_CACHE, { recursive: true, force: true }));

const mb = (kb: number) => kb / 1024;
const f1 = (x: number) => x.toFixed(1);
const f0 = (x: number) => x.toFixed(0);

/** Cost of one more tenant between two runs: removes the fixed cost (runtime, providers). */
function marginal(a: Measurement, b: Measurement) {
  const dn = b.tenants - a.tenants;
  return {
    ms: (b.evalMs - a.evalMs) / dn,
    cpuMs: (b.evalCpuMs - a.evalCpuMs) / dn,
    mb: mb(b.maxRssKb - a.maxRssKb) / dn,
    resources: (b.resources - a.resources) / dn,
  };
}

function programSection(opts: Options): Section {
  const sizes = opts.quick ? [10, 100, 300] : [10, 100, 1000];
  const ours = opts.quick ? [...sizes] : [...sizes, DEFAULT_SHARD_SIZE, 5000];
  const plan: Array<[string, Mode, number[]]> = [
    ["baseline", MODES["ts-node"], sizes],
    ["baseline", MODES.js, sizes],
    ["pg-tenants", MODES["ts-node"], sizes],
    ["pg-tenants", MODES.js, sizes],
    ["pg-tenants", MODES["pulumi-js"], ours.sort((a, b) => a - b)],
  ];
  const results: Measurement[] = [];
  console.error("program evaluation under the mock runtime:");
  // A first run on a fresh machine: ts-node type-checks and compiles the program (no cache).
  const cold = ["baseline", "pg-tenants"].map((p) =>
    measure(p, MODES["ts-node"], 10, { TS_NODE_CACHE: "false" }),
  );
  console.error("  (warming the ts-node compile cache; not reported)");
  for (const p of ["baseline", "pg-tenants"]) measure(p, MODES["ts-node"], 1);
  for (const [program, mode, ns] of plan) {
    for (const n of ns) {
      // 5000 tenants need a few GB at worst: skip them when the machine cannot spare it.
      if (n >= 5000 && os.freemem() < 6 * 1024 ** 3) {
        console.error(`  ${program} ${mode.key} ${n}: skipped, less than 6 GB of free memory`);
        continue;
      }
      const m = measure(program, mode, n);
      if (m !== undefined) results.push(m);
    }
  }
  const find = (program: string, mode: string, n: number) =>
    results.find((r) => r.program === program && r.mode === mode && r.tenants === n);

  const lines: string[] = [];
  lines.push("### Program evaluation under the mock runtime", "");
  lines.push(
    "Each row is a fresh process. *load*: loading the program's modules (ts-node compiles them; the compile cache is warm except in the *cold* rows, the first run on a fresh machine); *eval*: declaring every resource until each has registered; *cpu*: its CPU time, steadier than wall time when the machine is shared; *peak RSS*: the process's maximum resident set (`process.resourceUsage().maxRSS`).",
    "",
    "| program | run as | tenants | resources | load (s) | eval (s) | cpu (s) | ms / tenant | peak RSS (MB) |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  );
  for (const r of results) {
    lines.push(
      `| ${r.program} | ${r.mode} | ${r.tenants} | ${r.resources} | ${f1(r.loadMs / 1000)} | ${f1(r.evalMs / 1000)} | ${f1(r.evalCpuMs / 1000)} | ${f1(r.evalMs / r.tenants)} | ${f0(mb(r.maxRssKb))} |`,
    );
  }
  for (const c of cold) {
    if (c === undefined) continue;
    lines.push(
      `| ${c.program} | ts-node, cold (no compile cache) | ${c.tenants} | ${c.resources} | ${f1(c.loadMs / 1000)} | ${f1(c.evalMs / 1000)} | ${f1(c.evalCpuMs / 1000)} | ${f1(c.evalMs / c.tenants)} | ${f0(mb(c.maxRssKb))} |`,
    );
  }
  lines.push(
    "",
    "Run modes: " +
      Object.values(MODES)
        .map((m) => `*${m.key}* = ${m.label}`)
        .join("; ") +
      ".",
    "",
  );

  // Per-tenant cost between the two largest sizes every configuration has.
  const [lo, hi] = [sizes[1], sizes[2]];
  lines.push(
    `#### Cost of one more tenant (between ${lo} and ${hi} tenants)`,
    "",
    "| program | run as | resources / tenant | ms / tenant | cpu ms / tenant | MB / tenant |",
    "| --- | --- | ---: | ---: | ---: | ---: |",
  );
  const per = new Map<string, ReturnType<typeof marginal>>();
  for (const [program, mode] of plan) {
    const a = find(program, mode.key, lo);
    const b = find(program, mode.key, hi);
    if (a === undefined || b === undefined) continue;
    const m = marginal(a, b);
    per.set(`${program}/${mode.key}`, m);
    lines.push(
      `| ${program} | ${mode.key} | ${f1(m.resources)} | ${f1(m.ms)} | ${f1(m.cpuMs)} | ${m.mb.toFixed(2)} |`,
    );
  }
  const ratio = (a: string, b: string, what: "ms" | "cpuMs" | "mb") => {
    const x = per.get(a)?.[what];
    const y = per.get(b)?.[what];
    return x === undefined || y === undefined || y <= 0 ? "n/a" : `${(x / y).toFixed(1)}x`;
  };
  lines.push(
    "",
    "| ratio (per tenant) | time | cpu | memory |",
    "| --- | ---: | ---: | ---: |",
    `| baseline ts-node / pg-tenants pulumi-js (the goal: >= 3x) | ${ratio("baseline/ts-node", "pg-tenants/pulumi-js", "ms")} | ${ratio("baseline/ts-node", "pg-tenants/pulumi-js", "cpuMs")} | ${ratio("baseline/ts-node", "pg-tenants/pulumi-js", "mb")} |`,
    `| baseline js / pg-tenants js (both compiled, plain node) | ${ratio("baseline/js", "pg-tenants/js", "ms")} | ${ratio("baseline/js", "pg-tenants/js", "cpuMs")} | ${ratio("baseline/js", "pg-tenants/js", "mb")} |`,
    `| baseline ts-node / pg-tenants ts-node | ${ratio("baseline/ts-node", "pg-tenants/ts-node", "ms")} | ${ratio("baseline/ts-node", "pg-tenants/ts-node", "cpuMs")} | ${ratio("baseline/ts-node", "pg-tenants/ts-node", "mb")} |`,
    `| pg-tenants ts-node / pg-tenants pulumi-js | ${ratio("pg-tenants/ts-node", "pg-tenants/pulumi-js", "ms")} | ${ratio("pg-tenants/ts-node", "pg-tenants/pulumi-js", "cpuMs")} | ${ratio("pg-tenants/ts-node", "pg-tenants/pulumi-js", "mb")} |`,
    "",
  );

  // Linearity: the per-tenant cost over each step of the sizes.
  const steps = results
    .filter((r) => r.program === "pg-tenants" && r.mode === "pulumi-js")
    .sort((a, b) => a.tenants - b.tenants);
  if (steps.length > 1) {
    lines.push(
      "#### Linearity (pg-tenants, pulumi-js): cost of one more tenant over each step",
      "",
      "| from | to | ms / tenant | cpu ms / tenant | MB / tenant |",
      "| ---: | ---: | ---: | ---: | ---: |",
    );
    for (let i = 1; i < steps.length; i++) {
      const m = marginal(steps[i - 1], steps[i]);
      lines.push(
        `| ${steps[i - 1].tenants} | ${steps[i].tenants} | ${f1(m.ms)} | ${f1(m.cpuMs)} | ${m.mb.toFixed(2)} |`,
      );
    }
    lines.push("");
  }
  const shard = find("pg-tenants", "pulumi-js", DEFAULT_SHARD_SIZE);
  if (shard !== undefined) {
    lines.push(
      `One shard at the recommended size (${DEFAULT_SHARD_SIZE} tenants, pulumi-js): evaluation ${f1(shard.evalMs / 1000)} s, peak RSS ${f0(mb(shard.maxRssKb))} MB, ${shard.resources} resources.`,
      "",
    );
  }
  return { name: "program", markdown: lines.join("\n") };
}

function machine(): string {
  const cpus = os.cpus();
  return [
    `- date: ${new Date().toISOString()}`,
    `- machine: ${cpus.length} x ${cpus[0]?.model ?? "unknown CPU"}, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GB memory, ${os.type()} ${os.release()}`,
    `- node ${process.version}; load average at the start: ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(", ")}`,
  ].join("\n");
}

/**
 * Replaces, in bench/RESULTS.md, the generated block of each section measured (and the run's
 * header), so a run of some sections keeps the figures of the others; notes outside the
 * blocks are kept.
 */
function writeResults(blocks: Array<{ name: string; markdown: string }>): void {
  const file = path.join(ROOT, "bench", "RESULTS.md");
  let text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "# Benchmark results\n";
  for (const { name, markdown } of blocks) {
    const start = `<!-- generated:${name}:start -->`;
    const end = `<!-- generated:${name}:end -->`;
    const a = text.indexOf(start);
    const b = text.indexOf(end);
    const block = `${start}\n${markdown.trim()}\n${end}`;
    text =
      a >= 0 && b > a
        ? `${text.slice(0, a)}${block}${text.slice(b + end.length)}`
        : `${text.trimEnd()}\n\n${block}\n`;
  }
  fs.writeFileSync(file, text);
  // Kept in the repository's format, so `npm run format:check` stays clean.
  spawnSync(
    process.execPath,
    [path.join(ROOT, "node_modules", "prettier", "bin", "prettier.cjs"), "--write", file],
    {
      cwd: ROOT,
    },
  );
  console.error(`wrote ${path.relative(ROOT, file)}`);
}

/** The application library's cost: withTenant against a plain pg.Pool query (bench/client.ts). */
async function clientSection(opts: Options): Promise<Section> {
  console.error("withTenant against a plain pg.Pool query:");
  const result = await benchClientOverhead(opts.quick ? { iterations: 2000, rounds: 6 } : {});
  return {
    name: "client",
    markdown: result.markdown,
  };
}

/** PgBouncer's bound on server connections, its latency, and usage's sample cost (bench/pooler.ts). */
async function poolerSection(opts: Options): Promise<Section> {
  const result = await benchPooler({
    quick: opts.quick,
    appWorker: [path.join(DIST, "bench", "workers", "app.js")],
  });
  return { name: "pooler", markdown: result.markdown };
}

export async function main(argv: string[]): Promise<number> {
  const opts = parseArgs(argv);
  const header = `${opts.quick ? "Quick run" : "Full run"} of ${[...opts.only].join(", ")}:\n\n${machine()}\n`;
  build();
  const sections: Section[] = [];
  if (opts.only.has("program")) sections.push(programSection(opts));
  if (opts.only.has("provision")) sections.push(await runProvisioning(opts));
  if (opts.only.has("check") || opts.only.has("audit")) sections.push(...(await runChecks(opts)));
  if (opts.only.has("client")) sections.push(await clientSection(opts));
  if (opts.only.has("cli")) sections.push(runCliStart(opts));
  if (opts.only.has("pooler")) sections.push(await poolerSection(opts));
  if (opts.only.has("engine") || opts.only.has("engine-build"))
    sections.push(await runEngine(opts));
  if (opts.only.has("migrate")) {
    // Fleet migrations on 1,000 tenants of one cluster (bench/migrate.ts).
    sections.push({ name: "migrate", markdown: (await benchMigrate(opts)).markdown });
  }
  if (opts.only.has("move")) {
    // A tier move's freeze per GB against the dump it replaced, with eight writers (bench/move.ts).
    sections.push({ name: "move", markdown: (await benchMove(opts.quick ? 64 : 256)).markdown });
  }
  console.log([header, ...sections.map((s) => s.markdown)].join("\n"));
  if (opts.write)
    writeResults(sections.map((s) => ({ name: s.name, markdown: `${header}\n${s.markdown}` })));
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : String(e));
      process.exitCode = 1;
    },
  );
}
