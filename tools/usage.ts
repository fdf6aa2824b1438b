import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import type { Client } from "pg";
import { buildFleetModel, FleetModel, tenantsOnTier } from "../infra/model";
import {
  CommandError,
  CommandIo,
  EXIT,
  loadContext,
  processIo,
  readCommandArgs,
  runCommand,
  StackContext,
  UsageError,
} from "./lib/cli";
import { clusterTarget, connect, mapPool } from "./lib/pg";
import { adviseTenants, Advice } from "./usage/advice";
import { renderUsageHtml } from "./usage/html";
import { METRICS_CONTENT_TYPE, renderMetrics } from "./usage/metrics";
import {
  renderUsageJson,
  renderUsageMarkdown,
  renderUsageText,
  USAGE_FORMATS,
  UsageFormat,
} from "./usage/render";
import { buildUsageReport, PeakSessions, UsageReport } from "./usage/report";
import { ClusterSample, readLogins, sampleCluster } from "./usage/sample";

/**
 * `npm run usage -- --stack <name> [--interval 60s] [--format text|json|markdown|html]
 * [--advise] [--metrics <file> | --serve [host:]<port>]`: per tenant, what it did over a
 * sampled interval and since the statistics reset, sorted by load, with the clusters' totals
 * against their connection budget; `--advise` names the tenants to move up or down a tier.
 * Reads every cluster as its provisioning role from the maintenance database (two samples of
 * pg_stat_database and sizes, sessions polled every second in between); changes nothing.
 * Exit 0 with a report, 1 when a cluster cannot be read, 2 on bad usage.
 */

/**
 * PostgreSQL (15+) publishes a session's counters at most once a second while it is busy and
 * up to 10 s after it goes idle (or at its end): a shorter interval misses work that happened.
 */
export const MIN_INTERVAL_SECONDS = 10;
const MAX_INTERVAL_SECONDS = 24 * 3600;
/** Sessions are polled this often between the two samples, for the peak. */
const POLL_MS = 1000;

/** `60s`, `5m`, `1h` or a number of seconds. */
export function parseInterval(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(text.trim());
  const seconds = m === null ? NaN : Number(m[1]) * (m[2] === "h" ? 3600 : m[2] === "m" ? 60 : 1);
  if (
    !Number.isFinite(seconds) ||
    seconds < MIN_INTERVAL_SECONDS ||
    seconds > MAX_INTERVAL_SECONDS
  ) {
    throw new UsageError(
      `--interval must be from ${MIN_INTERVAL_SECONDS}s to 24h (e.g. 60s, 5m): PostgreSQL publishes an idle session's statistics up to 10 s late, so shorter samples miss work`,
    );
  }
  return seconds;
}

/** `9187` or `0.0.0.0:9187`; the host defaults to 127.0.0.1 (the figures name every tenant). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:(.+):)?(\d{1,5})$/.exec(text);
  const port = m === null ? NaN : Number(m[2]);
  if (m === null || port < 1 || port > 65535) {
    throw new UsageError("--serve takes [host:]port, e.g. 9187 or 0.0.0.0:9187");
  }
  return { host: m[1] ?? "127.0.0.1", port };
}

interface Sampler {
  fleet: FleetModel;
  clients: Record<string, Client>;
  databases: Record<string, string[]>;
  close(): Promise<void>;
}

async function openSampler(ctx: StackContext, io: CommandIo): Promise<Sampler> {
  const fleet = buildFleetModel(ctx.tenants, ctx.cfg);
  const tiers = Object.keys(ctx.cfg.clusters);
  const clients: Record<string, Client> = {};
  try {
    for (const tier of tiers) {
      clients[tier] = await connect(clusterTarget(ctx.cfg, tier, ctx.root, io.env));
    }
  } catch (e) {
    await Promise.all(Object.values(clients).map((c) => c.end().catch(() => undefined)));
    throw e;
  }
  return {
    fleet,
    clients,
    databases: Object.fromEntries(
      tiers.map((t) => [t, tenantsOnTier(fleet, t).map((m) => m.database.name)]),
    ),
    close: async () => {
      await Promise.all(Object.values(clients).map((c) => c.end().catch(() => undefined)));
    },
  };
}

async function sampleAll(s: Sampler): Promise<Record<string, ClusterSample>> {
  const tiers = Object.keys(s.clients);
  const samples = await mapPool(tiers, tiers.length, (tier) =>
    sampleCluster(s.clients[tier], tier, s.databases[tier], { sizes: true }),
  );
  return Object.fromEntries(samples.map((x) => [x.tier, x]));
}

function startPeaks(first: Record<string, ClusterSample>): Record<string, PeakSessions> {
  const peaks: Record<string, PeakSessions> = {};
  for (const [tier, sample] of Object.entries(first)) {
    peaks[tier] = { cluster: sample.connections, databases: {}, logins: {}, samples: 0 };
    record(peaks[tier], sample.logins);
  }
  return peaks;
}

function record(peak: PeakSessions, logins: Record<string, Record<string, number>>): void {
  peak.samples++;
  for (const [db, users] of Object.entries(logins)) {
    let total = 0;
    for (const [user, n] of Object.entries(users)) {
      total += n;
      const byUser = (peak.logins[db] ??= {});
      byUser[user] = Math.max(byUser[user] ?? 0, n);
    }
    peak.databases[db] = Math.max(peak.databases[db] ?? 0, total);
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted === true) return resolve();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

/** Polls every cluster's sessions until `seconds` after `from`, then takes the closing sample. */
async function measureInterval(
  s: Sampler,
  first: Record<string, ClusterSample>,
  seconds: number,
  signal?: AbortSignal,
): Promise<{ last: Record<string, ClusterSample>; peaks: Record<string, PeakSessions> }> {
  const peaks = startPeaks(first);
  const until = Math.min(...Object.values(first).map((x) => x.at)) + seconds * 1000;
  while (Date.now() + POLL_MS < until && signal?.aborted !== true) {
    await sleep(POLL_MS, signal);
    for (const [tier, client] of Object.entries(s.clients)) {
      const logins = await readLogins(client, s.databases[tier]);
      record(peaks[tier], logins);
      const all = await client.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend'",
      );
      peaks[tier].cluster = Math.max(peaks[tier].cluster, all.rows[0].n);
    }
  }
  const rest = until - Date.now();
  if (rest > 0) await sleep(rest, signal);
  const last = await sampleAll(s);
  for (const [tier, sample] of Object.entries(last)) record(peaks[tier], sample.logins);
  return { last, peaks };
}

export interface UsageOptions {
  intervalSeconds: number;
  advise: boolean;
  /** Called once the opening sample is taken: what happens from now on is measured. */
  onFirstSample?: () => void;
}

export interface UsageResult {
  report: UsageReport;
  advice?: Advice[];
}

/** One interval over every cluster of the stack. */
export async function measureUsage(
  ctx: StackContext,
  io: CommandIo,
  options: UsageOptions,
): Promise<UsageResult> {
  const s = await openSampler(ctx, io);
  try {
    const first = await sampleAll(s);
    options.onFirstSample?.();
    const { last, peaks } = await measureInterval(s, first, options.intervalSeconds);
    const report = buildUsageReport({ cfg: ctx.cfg, fleet: s.fleet, first, last, peaks });
    return {
      report,
      ...(options.advise ? { advice: adviseTenants(report, ctx.cfg, ctx.tenants) } : {}),
    };
  } finally {
    await s.close();
  }
}

export function renderUsage(result: UsageResult, format: UsageFormat): string {
  switch (format) {
    case "json":
      return renderUsageJson(result.report, result.advice);
    case "markdown":
      return renderUsageMarkdown(result.report, result.advice);
    case "html":
      return renderUsageHtml(result.report, result.advice);
    case "text":
      return renderUsageText(result.report, result.advice);
  }
}

/** Writes a node_exporter textfile: a temporary file renamed over the old one, never half-written. */
async function writeMetricsFile(file: string, result: UsageResult): Promise<void> {
  const text = await renderMetrics(result.report, result.advice);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, text, { mode: 0o644 });
  fs.renameSync(temporary, file);
}

/**
 * `--serve`: samples one interval after another (each interval's closing sample opens the
 * next) and serves the latest figures at `/metrics` until SIGINT or SIGTERM (or `signal`).
 */
export async function serveUsage(
  ctx: StackContext,
  io: CommandIo,
  options: UsageOptions & { host: string; port: number; signal: AbortSignal },
): Promise<void> {
  let latest: string | undefined;
  const server = http.createServer((req, res) => {
    if (req.url !== "/metrics") {
      res
        .writeHead(404, { "Content-Type": "text/plain" })
        .end("not found: the metrics are at /metrics\n");
    } else if (latest === undefined) {
      res
        .writeHead(503, {
          "Content-Type": "text/plain",
          "Retry-After": String(options.intervalSeconds),
        })
        .end("the first interval is still being sampled\n");
    } else {
      res.writeHead(200, { "Content-Type": METRICS_CONTENT_TYPE }).end(latest);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e) =>
      reject(
        new CommandError(`cannot serve metrics on ${options.host}:${options.port}: ${e.message}`),
      ),
    );
    server.listen(options.port, options.host, resolve);
  });
  io.out(
    `serving usage metrics on http://${options.host}:${options.port}/metrics, a new interval every ${options.intervalSeconds} s`,
  );
  const s = await openSampler(ctx, io);
  try {
    let first = await sampleAll(s);
    while (!options.signal.aborted) {
      const { last, peaks } = await measureInterval(
        s,
        first,
        options.intervalSeconds,
        options.signal,
      );
      if (options.signal.aborted) break;
      const report = buildUsageReport({ cfg: ctx.cfg, fleet: s.fleet, first, last, peaks });
      const advice = options.advise ? adviseTenants(report, ctx.cfg, ctx.tenants) : undefined;
      latest = await renderMetrics(report, advice);
      const top = report.tenants[0];
      io.out(
        `${report.at}: ${report.tenants.length} tenant(s) over ${report.intervalSeconds} s${top !== undefined ? `; busiest ${top.tenant} (${top.tier}, ${top.perSecond.activeMs} ms/s)` : ""}`,
      );
      first = last;
    }
  } finally {
    await s.close();
    // Scrapers keep their connections alive: close them, or close() waits for their timeout.
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

export async function main(argv: string[], io: CommandIo = processIo()): Promise<number> {
  return runCommand(io, async () => {
    const args = readCommandArgs(argv, "usage");
    const withUsage = <T>(read: () => T): T => {
      try {
        return read();
      } catch (e) {
        if (e instanceof UsageError) throw new UsageError(`${e.message}\nusage: ${args.usage}`);
        throw e;
      }
    };
    const format = args.value("format") as UsageFormat;
    if (!(USAGE_FORMATS as readonly string[]).includes(format)) {
      throw new UsageError(
        `--format must be one of ${USAGE_FORMATS.join(", ")}\nusage: ${args.usage}`,
      );
    }
    const metricsFile = args.text("metrics");
    const serve = args.text("serve");
    if (metricsFile !== undefined && serve !== undefined) {
      throw new UsageError(`give --metrics or --serve, not both\nusage: ${args.usage}`);
    }
    const intervalSeconds = withUsage(() => parseInterval(args.value("interval")));
    const listen = serve !== undefined ? withUsage(() => parseListen(serve)) : undefined;
    const ctx = loadContext(args.value("stack"), io.root);
    const options = { intervalSeconds, advise: args.flag("advise") };
    if (listen !== undefined) {
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      try {
        await serveUsage(ctx, io, { ...options, ...listen, signal: controller.signal });
      } finally {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
      }
      return EXIT.ok;
    }
    const result = await measureUsage(ctx, io, {
      ...options,
      onFirstSample: () =>
        io.err(
          `sampling ${Object.keys(ctx.cfg.clusters).length} cluster(s) of stack ${ctx.cfg.stack} for ${intervalSeconds} s`,
        ),
    });
    if (metricsFile !== undefined) {
      const file = path.resolve(io.root, metricsFile);
      await writeMetricsFile(file, result);
    }
    io.out(renderUsage(result, format));
    return EXIT.ok;
  });
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
