import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse, stringify } from "yaml";
import { cliArgs, tsNodeArgs } from "../harness/tool";
import { benchBudget } from "./support/budget";
import { tenantYaml } from "../harness/tenantFiles";
import type { Options } from "./run";
import type { ProvisionJob, ProvisionResult } from "./workers/provision";

/** One part of the report: a Markdown block. */
export interface Section {
  name: string;
  markdown: string;
}

const ROOT = path.join(__dirname, "..");
/** Preloaded into measured commands: prints the process's peak RSS on exit. */
const PEAK = path.join(ROOT, "dist", "bench", "support", "peak.js");

const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);

/** A figure that cannot be measured here, with the reason, instead of a number. */
function notAvailable(title: string, reason: string): string {
  return `### ${title}\n\nnot available: ${reason}\n`;
}

function tool(...parts: string[]): string | undefined {
  const file = path.join(ROOT, "tools", ...parts);
  return fs.existsSync(file) ? file : undefined;
}

export async function runProvisioning(opts: Options): Promise<Section> {
  const title = "Provisioning on a real cluster (embedded PostgreSQL 17)";
  if (!fs.existsSync(path.join(ROOT, "harness", "fleet.ts"))) {
    return {
      name: "provision",
      markdown: notAvailable(title, "the integration harness harness/fleet.ts does not exist"),
    };
  }
  const auditFile = tool("audit", "index.ts");
  const wantAudit = opts.only.has("audit") && auditFile !== undefined;
  const job: ProvisionJob = {
    tenants: opts.quick ? 10 : 50,
    createRepeats: opts.quick ? 3 : 7,
    largeRows: opts.quick ? 300_000 : 2_000_000,
    auditTenants: wantAudit ? (opts.quick ? 100 : 1000) : 0,
    auditCommand: wantAudit ? tsNodeArgs(auditFile, [], [PEAK]) : undefined,
  };
  console.error(
    `provisioning: ${job.tenants} new tenants through the harness, then the floor, CREATE DATABASE strategies${wantAudit ? `, the audit of ${job.auditTenants} tenants` : ""}`,
  );
  const r = spawnSync(
    process.execPath,
    tsNodeArgs(path.join(ROOT, "bench", "workers", "provision.ts"), [JSON.stringify(job)]),
    {
      cwd: ROOT,
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
      timeout: 60 * 60 * 1000,
    },
  );
  const line = r.stdout.trim().split("\n").pop() ?? "";
  if (r.status !== 0 || !line.startsWith("{")) {
    const message = r.stderr
      .split("\n")
      .filter((l) => l.trim() !== "" && !/^\s+at /.test(l))
      .slice(-4)
      .join(" | ");
    const reason = `the provisioning run failed (${r.signal ?? `exit ${r.status}`}): ${message}`;
    return { name: "provision", markdown: notAvailable(title, reason) };
  }
  const p = JSON.parse(line) as ProvisionResult;
  const perTenant = p.harnessMs / p.tenants;
  const floorPer = p.floorMs / p.tenants;
  const lines = [
    `### ${title}`,
    "",
    `${p.tenants} new tenants on one cluster through the integration harness: the real program under mocks that apply each resource with the provider's statements, one resource at a time. The floor replays the very same ${p.statements} statements (${p.writes} of them writes; the rest the provider's reads and transaction brackets) in order, with no Pulumi in between, on one connection per database (${p.floorConnections} connections opened in all; the provider too connects to each tenant database).`,
    "",
    "| path | total (s) | s / new tenant | statements / tenant |",
    "| --- | ---: | ---: | ---: |",
    `| harness (program + provider statements) | ${f1(p.harnessMs / 1000)} | ${f2(perTenant / 1000)} | ${f1(p.statements / p.tenants)} |`,
    `| floor (same statements, no Pulumi) | ${f1(p.floorMs / 1000)} | ${f2(floorPer / 1000)} | ${f1(p.statements / p.tenants)} |`,
    `| ratio harness / floor | | ${f1(perTenant / floorPer)}x | |`,
    "",
    "CREATE DATABASE from a template, on a cluster of its own with PostgreSQL's durable defaults (fsync on; the harness's test clusters run with fsync off), as the bootstrap superuser, median of the repeats:",
    "",
    "| template | size (MB) | strategy | median (ms) | repeats |",
    "| --- | ---: | --- | ---: | ---: |",
    ...p.create.map(
      (c) =>
        `| ${c.template} | ${f1(c.sizeMb)} | ${c.strategy} | ${f1(c.medianMs)} | ${c.repeats} |`,
    ),
  ];
  for (const tpl of [...new Set(p.create.map((c) => c.template))]) {
    const wal = p.create.find((c) => c.template === tpl && c.strategy === "WAL_LOG");
    const copy = p.create.find((c) => c.template === tpl && c.strategy === "FILE_COPY");
    if (wal && copy)
      lines.push(`- ${tpl}: FILE_COPY / WAL_LOG = ${f1(copy.medianMs / wal.medianMs)}x`);
  }
  lines.push("");
  if (opts.only.has("audit")) {
    if (auditFile === undefined) {
      lines.push(notAvailable("Audit of one cluster", "tools/audit/index.ts does not exist"));
    } else if (p.audit === undefined) {
      lines.push(
        notAvailable("Audit of one cluster", "the provisioning run did not reach the audit"),
      );
    } else {
      const a = p.audit;
      lines.push(
        "### Audit of one cluster",
        "",
        `\`npm run audit\` (run as \`npm run\` does, through ts-node) over ${a.tenants} tenants on one cluster (put there by replaying the harness's statements under new ids): ${f1(a.ms / 1000)} s, ${f1(a.ms / a.tenants)} ms per tenant, peak RSS ${a.maxRssKb === undefined ? "unknown" : `${(a.maxRssKb / 1024).toFixed(0)} MB`}, exit code ${a.exitCode}${a.exitCode === 0 ? " (every invariant holds)" : `; output: \`${a.output.replace(/\s+/g, " ").slice(0, 300)}\``}.`,
        "",
      );
    }
  }
  return { name: "provision", markdown: lines.join("\n") };
}

/** `npm run check` over a generated manifest of `n` tenants, in a folder of its own. */
function measureCheck(n: number): {
  ms: number;
  maxRssKb?: number;
  exitCode: number | null;
  tail: string;
} {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "pg-tenants-bench-check-"));
  try {
    const tenantsDir = path.join(root, "tenants");
    fs.mkdirSync(tenantsDir);
    fs.mkdirSync(path.join(root, "stacks"));
    for (let i = 0; i < n; i++) {
      const id = `customer_${String(i).padStart(5, "0")}`;
      const tier = i % 2 === 0 ? "standard" : "premium";
      fs.writeFileSync(
        path.join(tenantsDir, `${id}.yaml`),
        tenantYaml({ id, tier, displayName: `Customer ${i}` }),
      );
    }
    const local = fs.readFileSync(path.join(ROOT, "stacks", "Pulumi.local.yaml"), "utf8");
    const config = (parse(local) as { config: Record<string, unknown> }).config;
    const doc = {
      config: {
        ...config,
        "pg-tenants:clusters": benchBudget({
          clusters: config["pg-tenants:clusters"],
        }).clusters,
        "pg-tenants:tenantsDir": tenantsDir,
      },
    };
    // Named local: the policies allow sslmode disable (embedded clusters) on that stack alone.
    fs.writeFileSync(path.join(root, "stacks", "Pulumi.local.yaml"), stringify(doc));
    const t0 = Date.now();
    const r = spawnSync(
      process.execPath,
      tsNodeArgs(
        path.join(ROOT, "tools", "check", "index.ts"),
        ["--stack", "local", "--format", "json"],
        [PEAK],
      ),
      {
        cwd: root,
        encoding: "utf8",
        maxBuffer: 512 * 1024 * 1024,
        timeout: 30 * 60 * 1000,
      },
    );
    const ms = Date.now() - t0;
    const peak = /BENCH_MAX_RSS_KB=(\d+)/.exec(r.stderr);
    return {
      ms,
      maxRssKb: peak ? Number(peak[1]) : undefined,
      exitCode: r.status,
      tail: r.stderr
        .replace(/BENCH_MAX_RSS_KB=\d+\n?/, "")
        .trim()
        .split("\n")
        .slice(-3)
        .join(" | "),
    };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

export async function runChecks(opts: Options): Promise<Section[]> {
  const sections: Section[] = [];
  if (opts.only.has("check")) {
    const title = "Offline check (`npm run check`)";
    if (!fs.existsSync(path.join(ROOT, "tools", "check", "index.ts"))) {
      sections.push({
        name: "check",
        markdown: notAvailable(title, "tools/check/index.ts does not exist"),
      });
    } else {
      const lines = [
        `### ${title}`,
        "",
        "A generated manifest on the local stack's config, run as `npm run` runs it (ts-node): validation, the real program under the mock runtime, every policy.",
        "",
        "| tenants | total (s) | ms / tenant | peak RSS (MB) | exit code |",
        "| ---: | ---: | ---: | ---: | ---: |",
      ];
      for (const n of opts.quick ? [100] : [100, 1000]) {
        console.error(`check: ${n} tenants`);
        const c = measureCheck(n);
        lines.push(
          `| ${n} | ${f1(c.ms / 1000)} | ${f1(c.ms / n)} | ${c.maxRssKb === undefined ? "?" : (c.maxRssKb / 1024).toFixed(0)} | ${c.exitCode}${c.exitCode === 0 ? "" : ` (${c.tail.slice(0, 200)})`} |`,
        );
      }
      lines.push("");
      sections.push({ name: "check", markdown: lines.join("\n") });
    }
  }
  if (opts.only.has("audit") && !opts.only.has("provision")) {
    sections.push({
      name: "audit",
      markdown: notAvailable(
        "Audit of one cluster",
        "the audit runs on the cluster the provisioning section starts: run it with --only provision,audit",
      ),
    });
  }
  return sections;
}

/** Wall time of one run of `pg-tenants <args>` from the project root, in ms, and its exit code. */
function timeCli(args: string[]): { ms: number; status: number | null } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, cliArgs(args), {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
    timeout: 120_000,
  });
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, status: r.status };
}

/**
 * How fast the command line answers: `--help` and a usage error load only commander and the
 * command table; `check --stack local` loads TypeScript (ts-node, swc) and the program.
 */
export function runCliStart(opts: Options): Section {
  const runs = opts.quick ? 3 : 10;
  const cases: Array<{ what: string; args: string[]; limit: number }> = [
    { what: "`pg-tenants --help`", args: ["--help"], limit: 500 },
    {
      what: "`pg-tenants audit --nope` (usage error, exit 2)",
      args: ["audit", "--nope"],
      limit: 500,
    },
    { what: "`pg-tenants check --stack local`", args: ["check", "--stack", "local"], limit: 3000 },
  ];
  console.error(`CLI start: ${cases.length} commands, ${runs} runs each`);
  const rows = cases.map((c) => {
    timeCli(c.args); // warm the file cache and ts-node's
    const times = Array.from({ length: runs }, () => timeCli(c.args));
    const ms = times.map((t) => t.ms).sort((a, b) => a - b);
    const median = ms[Math.floor(ms.length / 2)];
    const status = [...new Set(times.map((t) => t.status))].join(", ");
    return `| ${c.what} | ${median.toFixed(0)} | ${ms[0].toFixed(0)} | ${c.limit} | ${status} |`;
  });
  return {
    name: "cli",
    markdown: [
      "### CLI start",
      "",
      `Wall time from process start to exit, ${runs} runs after one warm-up (node bin/pg-tenants.js, NO_COLOR=1).`,
      "",
      "| command | median ms | fastest ms | target ms | exit code |",
      "| ------- | --------- | ---------- | --------- | --------- |",
      ...rows,
      "",
    ].join("\n"),
  };
}
