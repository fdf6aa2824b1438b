import {
  CredentialsOutput,
  LocalOutputsCredentials,
  TenantConnector,
  TenantDirectory,
  TenantSummaryView,
} from "../../client";

/**
 * One application process of the pooler benchmark: a TenantConnector (the client library, with
 * its per-process caps) running request loops over every tenant and both logins, straight to
 * the cluster or through its PgBouncer. Reads its job as JSON on stdin (it holds passwords: never
 * on a command line) and prints its figures as one JSON line.
 */

export interface AppJob {
  via: "cluster" | "pooler";
  tenants: Record<string, TenantSummaryView>;
  credentials: CredentialsOutput;
  /** Concurrent request loops. */
  concurrency: number;
  maxConnections: number;
  maxConnectionsPerTenant: number;
  /** Where this process starts in the tenant list, so processes spread over tenants. */
  offset: number;
  /** Wall clock start (ms since the epoch): every process starts its loops together. */
  startAt: number;
  durationMs: number;
  sql: string;
}

export interface AppResult {
  queries: number;
  /** `<sqlstate> <message>` of each failure, counted. */
  errors: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  /** Most connections the process held at once. */
  maxOpen: number;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export async function runApp(job: AppJob): Promise<AppResult> {
  const connector = new TenantConnector({
    directory: new TenantDirectory({ tenants: job.tenants }),
    credentials: new LocalOutputsCredentials(job.credentials),
    via: job.via,
    maxConnections: job.maxConnections,
    maxConnectionsPerTenant: job.maxConnectionsPerTenant,
    acquireTimeoutMs: 60_000,
    // Thousands of logins in a few seconds on a shared machine: connecting may take a while.
    connectTimeoutMs: 30_000,
    applicationName: "pg-tenants-bench",
  });
  const ids = Object.keys(job.tenants).sort();
  const errors: Record<string, number> = {};
  const latencies: number[] = [];
  let maxOpen = 0;
  let next = job.offset;
  while (Date.now() < job.startAt) await new Promise((r) => setTimeout(r, 5));
  const deadline = Date.now() + job.durationMs;
  try {
    await Promise.all(
      Array.from({ length: job.concurrency }, async () => {
        while (Date.now() < deadline) {
          const k = next++;
          const id = ids[k % ids.length];
          const login = Math.floor(k / ids.length) % 2 === 0 ? "rw" : "ro";
          const started = performance.now();
          try {
            await connector.withTenant(id, login, (db) => db.query(job.sql));
            latencies.push(performance.now() - started);
          } catch (err) {
            const e = err as { code?: string; message?: string };
            const key = `${e.code ?? "-"} ${String(e.message).slice(0, 120)}`;
            errors[key] = (errors[key] ?? 0) + 1;
          }
          maxOpen = Math.max(maxOpen, connector.metrics().open);
        }
      }),
    );
  } finally {
    await connector.close();
  }
  latencies.sort((a, b) => a - b);
  return {
    queries: latencies.length,
    errors,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    maxOpen,
  };
}

if (require.main === module) {
  let input = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => (input += chunk));
  process.stdin.on("end", () => {
    runApp(JSON.parse(input) as AppJob).then(
      (r) => {
        process.stdout.write(JSON.stringify(r) + "\n");
        process.exit(0);
      },
      (e: unknown) => {
        console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
        process.exit(1);
      },
    );
  });
}
