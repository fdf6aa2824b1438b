import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { tsNodeArgs } from "../harness/tool";
import { buildEngine } from "../tools/engine";
import { findEngine } from "../tools/lib/engine";
import type { Options } from "./run";
import type { Section } from "./sections";
import type { EngineJob, EngineResult } from "./workers/engine";

/**
 * The real engine's figures: `pulumi up` per new tenant against the floor of the same
 * statements, a no-change preview and `up --refresh` of a shard, the state's size per tenant,
 * and the engine build, warm (nothing to do) and cold (fresh Go caches; full runs only, it takes
 * several minutes).
 */

const ROOT = path.join(__dirname, "..");
const s = (ms: number) => (ms / 1000).toFixed(1);

/** `npm run engine` into a fresh folder with empty Go caches: the first build on a new machine. */
function coldBuild(): { seconds: number; ok: boolean; tail: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "pg-tenants-bench-engine-"));
  try {
    fs.cpSync(path.join(ROOT, "engine"), path.join(root, "engine"), { recursive: true });
    const started = Date.now();
    const r = spawnSync(
      process.execPath,
      [
        "-e",
        `require("ts-node").register({ project: ${JSON.stringify(path.join(ROOT, "tsconfig.json"))} });
         require(${JSON.stringify(path.join(ROOT, "tools", "engine.ts"))})
           .buildEngine(${JSON.stringify(root)}, { out: (l) => console.error(l), env: process.env })
           .then(() => process.exit(0), (e) => { console.error(e.message); process.exit(1); });`,
      ],
      {
        cwd: ROOT,
        encoding: "utf8",
        env: {
          ...process.env,
          GOMODCACHE: path.join(root, "go-mod"),
          GOCACHE: path.join(root, "go-build"),
        },
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    return {
      seconds: (Date.now() - started) / 1000,
      ok: r.status === 0,
      tail: r.stderr.trim().split("\n").slice(-2).join(" | "),
    };
  } finally {
    // Module caches are read-only files: make them removable first.
    spawnSync("chmod", ["-R", "u+w", root]);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

export async function runEngine(opts: Options): Promise<Section> {
  const title = "The real engine on one embedded cluster (PostgreSQL 17)";
  if (findEngine(ROOT, process.env) === undefined) {
    return {
      name: "engine",
      markdown: `### ${title}\n\nnot available: no Pulumi engine (npm run engine builds one)\n`,
    };
  }
  const warmStarted = Date.now();
  await buildEngine(ROOT, { out: () => undefined, env: process.env });
  const warmSeconds = (Date.now() - warmStarted) / 1000;

  const job: EngineJob = opts.quick
    ? { steps: [1, 10], shard: 25 }
    : { steps: [1, 10, 100], shard: 250 };
  console.error(
    `engine: pulumi up of ${job.steps.join(", ")} tenants, then a ${job.shard}-tenant shard`,
  );
  const r = spawnSync(
    process.execPath,
    tsNodeArgs(path.join(ROOT, "bench", "workers", "engine.ts"), [JSON.stringify(job)]),
    { cwd: ROOT, encoding: "utf8", maxBuffer: 64 * 1024 * 1024, timeout: 60 * 60 * 1000 },
  );
  if (r.status !== 0) {
    return {
      name: "engine",
      markdown: `### ${title}\n\nfailed: ${r.stderr.trim().split("\n").slice(-5).join(" | ")}\n`,
    };
  }
  const result = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}") as EngineResult;
  const cold = !opts.quick && opts.only.has("engine-build") ? coldBuild() : undefined;

  const lines = [
    `### ${title}`,
    "",
    "`pulumi up` as the tools run it (a preview, then the update), cumulative steps on one cluster, against the floor of the same statements sent directly with no Pulumi in between:",
    "",
    "| tenants after the step | new tenants | wall s | s per new tenant | x the floor |",
    "| ---: | ---: | ---: | ---: | ---: |",
    ...result.ups.map(
      (u) =>
        `| ${u.tenants} | ${u.added} | ${s(u.ms)} | ${(u.msPerTenant / 1000).toFixed(2)} | ${(u.msPerTenant / result.floorMsPerTenant).toFixed(1)} |`,
    ),
    "",
    `Floor: ${(result.floorMsPerTenant / 1000).toFixed(3)} s per tenant (the statements of one tenant's resources, replayed for new ids).`,
    "",
    `A shard of ${result.shard.tenants} tenants: no-change \`pulumi preview\` ${s(result.shard.previewMs)} s (goal < 30 s), \`pulumi up --refresh\` ${s(result.shard.refreshUpMs)} s (goal < 120 s); state file ${(result.stateBytes / 1024 / 1024).toFixed(1)} MB, ${(result.stateBytesPerTenant / 1024).toFixed(1)} KB per tenant.`,
    "",
    `Engine build (\`npm run engine\`): warm ${warmSeconds.toFixed(1)} s (everything up to date)${cold === undefined ? "; cold: `npm run bench -- --only engine,engine-build` (fresh Go caches, several minutes)" : `; cold ${cold.seconds.toFixed(0)} s with empty Go caches${cold.ok ? "" : ` (failed: ${cold.tail})`}`}.`,
    "",
  ];
  return { name: "engine", markdown: lines.join("\n") };
}
