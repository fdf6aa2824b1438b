import type { Advice } from "./advice";
import { formatBytes } from "./advice";
import type { ClusterUsage, TenantUsage, UsageReport } from "./report";

/** `usage`'s output formats (html: tools/usage/html.ts). */
export const USAGE_FORMATS = ["text", "json", "markdown", "html"] as const;
export type UsageFormat = (typeof USAGE_FORMATS)[number];

const num = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(x < 10 ? 2 : 1));
const pct = (x: number | null) => (x === null ? "-" : `${(x * 100).toFixed(1)}%`);
const bytes = (x: number | null) => (x === null ? "-" : formatBytes(x));

function connections(t: TenantUsage): string {
  return `${t.connections.now}/${t.connections.peak}/${t.connections.limit}`;
}

/** The interval table: one row per tenant, by load. */
function intervalRows(report: UsageReport): string[][] {
  return report.tenants.map((t) => [
    t.movingIn ? `${t.tenant} (moving in)` : t.tenant,
    t.tier,
    t.state,
    t.deployed ? num(t.perSecond.activeMs) : "not deployed",
    pct(t.loadShare),
    num(t.perSecond.xacts),
    num(t.perSecond.rowsRead),
    num(t.perSecond.rowsWritten),
    connections(t),
    bytes(t.interval.tempBytes),
    String(t.interval.deadlocks),
    bytes(t.sizeBytes),
    t.growthBytes === null ? "-" : bytes(t.growthBytes),
    pct(t.interval.cacheHitRatio),
  ]);
}

const INTERVAL_HEADER = [
  "tenant",
  "tier",
  "state",
  "load ms/s",
  "share",
  "xact/s",
  "read/s",
  "written/s",
  "conns now/peak/limit",
  "temp",
  "deadlocks",
  "size",
  "growth",
  "cache hit",
];

function sinceRows(report: UsageReport): string[][] {
  return report.tenants.map((t) => [
    t.movingIn ? `${t.tenant} (moving in)` : t.tenant,
    t.tier,
    String(t.sinceReset.xacts),
    String(t.sinceReset.rowsRead),
    String(t.sinceReset.rowsWritten),
    bytes(t.sinceReset.tempBytes),
    String(t.sinceReset.deadlocks),
    pct(t.sinceReset.cacheHitRatio),
    t.sinceReset.since ?? "statistics start",
  ]);
}

const SINCE_HEADER = [
  "tenant",
  "tier",
  "xacts",
  "rows read",
  "rows written",
  "temp",
  "deadlocks",
  "cache hit",
  "since",
];

function clusterRows(report: UsageReport): string[][] {
  return report.clusters.map((c: ClusterUsage) => [
    c.tier,
    String(c.tenants),
    `${c.connections.now}/${c.connections.peak}`,
    String(c.connections.maxConnections),
    String(c.connections.tenantSlots),
    String(c.connections.tenantLimits),
    c.connections.pooler === null ? "-" : String(c.connections.pooler),
    num(c.perSecond.activeMs),
    num(c.otherActiveMsPerSecond),
    num(c.perSecond.xacts),
    bytes(c.sizeBytes),
  ]);
}

const CLUSTER_HEADER = [
  "cluster",
  "tenants",
  "conns now/peak",
  "max_connections",
  "tenant slots",
  "tenant limits",
  "pooler server conns",
  "load ms/s",
  "other ms/s",
  "xact/s",
  "size",
];

function textTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

function markdownTable(header: string[], rows: string[][]): string[] {
  const esc = (c: string) => c.replace(/\|/g, "\\|");
  return [
    `| ${header.map(esc).join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.map(esc).join(" | ")} |`),
  ];
}

function title(report: UsageReport): string {
  return `usage of stack ${report.stack} over ${report.intervalSeconds} s (ended ${report.at}; ${report.connectionSamples} connection samples)`;
}

function adviceLines(advice: readonly Advice[]): string[] {
  if (advice.length === 0)
    return ["no tenant is over its tier's thresholds or could go down a tier"];
  const lines: string[] = [];
  for (const a of advice) {
    const what =
      a.action === "up"
        ? `${a.tenant} (${a.tier}) is over its tier's thresholds: declare \`${a.declare}\` in its file, then npm run move -- ${a.tenant}`
        : a.action === "down"
          ? `${a.tenant} (${a.tier}) could go down a tier: declare \`${a.declare}\` in its file, then npm run move -- ${a.tenant}`
          : `${a.tenant} (${a.tier}) is over its tier's thresholds`;
    lines.push(what, ...a.evidence.map((e) => `  - ${e}`));
  }
  return lines;
}

export function renderUsageText(report: UsageReport, advice?: readonly Advice[]): string {
  const lines = [
    title(report),
    "",
    "Tenants over the interval, by load (statement time per second):",
    ...textTable(INTERVAL_HEADER, intervalRows(report)),
    "",
    "Since the statistics reset:",
    ...textTable(SINCE_HEADER, sinceRows(report)),
    "",
    "Clusters:",
    ...textTable(CLUSTER_HEADER, clusterRows(report)),
  ];
  if (advice !== undefined) lines.push("", "Advice:", ...adviceLines(advice));
  return lines.join("\n");
}

export function renderUsageMarkdown(report: UsageReport, advice?: readonly Advice[]): string {
  const lines = [
    `### ${title(report)}`,
    "",
    "Tenants over the interval, by load (statement time per second):",
    "",
    ...markdownTable(INTERVAL_HEADER, intervalRows(report)),
    "",
    "Since the statistics reset:",
    "",
    ...markdownTable(SINCE_HEADER, sinceRows(report)),
    "",
    "Clusters:",
    "",
    ...markdownTable(CLUSTER_HEADER, clusterRows(report)),
  ];
  if (advice !== undefined) {
    lines.push("", "Advice:", "");
    for (const line of adviceLines(advice))
      lines.push(line.startsWith("  - ") ? line : `- ${line}`);
  }
  return lines.join("\n") + "\n";
}

export function renderUsageJson(report: UsageReport, advice?: readonly Advice[]): string {
  return JSON.stringify(advice === undefined ? report : { ...report, advice }, null, 2);
}
