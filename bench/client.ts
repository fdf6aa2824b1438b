import { Pool } from "pg";
import { LocalOutputsCredentials, TenantConnector, TenantDirectory } from "../client";
import { provisionFleet } from "../harness/fleet";

/**
 * The cost of `withTenant` over a plain `pg.Pool` query: the same tenant, login and statement
 * (`SELECT 1`, the worst case for a relative overhead), the same number of connections, on a
 * real cluster provisioned by the program. Each round runs both, in alternating order; the
 * ratio is the median of the per-round ratios (drift of a shared machine hits both variants of
 * a round alike), the times are the median rounds.
 * `npx ts-node bench/client.ts [iterations]` prints the table.
 */

export interface ClientBenchOptions {
  /** Queries per variant and concurrency level (default 20000). */
  iterations?: number;
  /** Concurrency levels, each with as many connections (default 1 and 8). */
  concurrency?: number[];
  rounds?: number;
}

export interface ClientBenchRow {
  concurrency: number;
  plainMsPerQuery: number;
  withTenantMsPerQuery: number;
  /** withTenant time per query divided by the plain pg.Pool time per query. */
  ratio: number;
}

export interface ClientBenchResult {
  iterations: number;
  rows: ClientBenchRow[];
  markdown: string;
}

const SQL = "SELECT 1 AS one";

export async function benchClientOverhead(
  options: ClientBenchOptions = {},
): Promise<ClientBenchResult> {
  const iterations = options.iterations ?? 20000;
  const levels = options.concurrency ?? [1, 8];
  const rounds = options.rounds ?? 20;
  const perRound = Math.max(1, Math.floor(iterations / rounds));
  const fleet = await provisionFleet({
    tiers: ["standard"],
    tenants: [{ id: "bench", tier: "standard" }],
  });
  const rows: ClientBenchRow[] = [];
  try {
    const creds = fleet.outputs.credentials.bench.ro;
    for (const concurrency of levels) {
      const pool = new Pool({ ...creds, ssl: false, max: concurrency, idleTimeoutMillis: 60_000 });
      const connector = new TenantConnector({
        directory: new TenantDirectory({ tenants: fleet.outputs.tenants }),
        credentials: new LocalOutputsCredentials(fleet.outputs.credentials),
        maxConnections: concurrency,
        maxConnectionsPerTenant: concurrency,
        idleTimeoutMs: 60_000,
      });
      try {
        const plain = () => pool.query(SQL);
        const viaTenant = () => connector.withTenant("bench", "ro", (c) => c.query(SQL));
        // Warm up: open every connection and let the JIT settle.
        await runLoops(plain, concurrency, 200);
        await runLoops(viaTenant, concurrency, 200);
        const plainRounds: number[] = [];
        const tenantRounds: number[] = [];
        const ratios: number[] = [];
        for (let r = 0; r < rounds; r++) {
          // Alternate which variant goes first, and compare within a round: drift cancels out.
          const order = r % 2 === 0 ? [plain, viaTenant] : [viaTenant, plain];
          const times = new Map<unknown, number>();
          for (const call of order)
            times.set(call, (await runLoops(call, concurrency, perRound)) / perRound);
          plainRounds.push(times.get(plain) as number);
          tenantRounds.push(times.get(viaTenant) as number);
          ratios.push((times.get(viaTenant) as number) / (times.get(plain) as number));
        }
        rows.push({
          concurrency,
          plainMsPerQuery: round(median(plainRounds), 4),
          withTenantMsPerQuery: round(median(tenantRounds), 4),
          ratio: round(median(ratios), 2),
        });
      } finally {
        await pool.end();
        await connector.close();
      }
    }
  } finally {
    await fleet.stop();
  }
  return {
    iterations: perRound * rounds,
    rows,
    markdown: markdown(perRound * rounds, rounds, rows),
  };
}

/** Runs `n` calls spread over `concurrency` loops; returns the elapsed milliseconds. */
async function runLoops(
  call: () => Promise<unknown>,
  concurrency: number,
  n: number,
): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        await call();
      }
    }),
  );
  return Number(process.hrtime.bigint() - started) / 1e6;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function markdown(iterations: number, rounds: number, rows: ClientBenchRow[]): string {
  return [
    "### Client: withTenant over a plain pg.Pool",
    "",
    `\`${SQL}\` as a tenant's ro login on one embedded cluster; ${iterations} queries per variant and level in ${rounds} rounds; ratio: median of the per-round ratios.`,
    "",
    "| concurrency (= connections) | pg.Pool ms/query | withTenant ms/query | ratio |",
    "|---|---|---|---|",
    ...rows.map(
      (r) => `| ${r.concurrency} | ${r.plainMsPerQuery} | ${r.withTenantMsPerQuery} | ${r.ratio} |`,
    ),
    "",
  ].join("\n");
}

if (require.main === module) {
  const iterations = process.argv[2] !== undefined ? Number(process.argv[2]) : undefined;
  if (iterations !== undefined && (!Number.isInteger(iterations) || iterations < 1)) {
    console.error("usage: npx ts-node bench/client.ts [iterations]");
    process.exit(2);
  }
  benchClientOverhead({ iterations }).then(
    (result) => console.log(result.markdown),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
