import * as fs from "fs";
import * as path from "path";
import { loadMigrations } from "../../tools/lib/migrations/files";
import { checkFleet, migrateFleet, TenantTarget } from "../../tools/lib/migrations/fleet";
import { counts } from "../../tools/lib/migrations/report";
import { DEFAULT_LIMITS } from "../../tools/lib/migrations/runner";
import type { ClusterTarget } from "../../tools/lib/pg";

/**
 * One measured phase of the migrate benchmark (bench/migrate.ts), in a process of its own so
 * that its peak RSS is its own: a run of `migrate` or of the drift check over every tenant of
 * one cluster, as the command runs it. The job is the JSON file argv[2] names; one JSON line out.
 */

export interface MigrateJob {
  phase: "migrate" | "verify" | "check";
  target: ClusterTarget;
  migrationsDir: string;
  version: number;
  parallel: number;
  tenants: TenantTarget[];
}

export interface MigrateResult {
  ms: number;
  maxRssKb: number;
  counts: Record<string, number>;
}

async function main(): Promise<void> {
  const job = JSON.parse(fs.readFileSync(process.argv[2], "utf8")) as MigrateJob;
  const migrations = loadMigrations(path.resolve(job.migrationsDir));
  const common = {
    migrations,
    family: "customer_template",
    version: job.version,
    provisioner: { standard: job.target.user },
    limits: DEFAULT_LIMITS,
    parallel: job.parallel,
  };
  const started = Date.now();
  let c: Record<string, number>;
  if (job.phase === "check") {
    const { results } = await checkFleet({ standard: job.target }, job.tenants, common);
    c = counts(results);
  } else {
    const report = await migrateFleet({ standard: job.target }, job.tenants, {
      ...common,
      searchPath: ["app"],
      canary: 1,
      waveSize: 0,
      continueOnError: false,
      dryRun: false,
      verify: job.phase === "verify",
    });
    c = counts(report.results);
  }
  const result: MigrateResult = {
    ms: Date.now() - started,
    maxRssKb: process.resourceUsage().maxRSS,
    counts: c,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

void main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
