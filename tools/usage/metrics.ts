import { Counter, Gauge, Registry } from "prom-client";
import type { Advice } from "./advice";
import type { TenantUsage, UsageReport } from "./report";

/**
 * `usage`'s figures as Prometheus metrics (prom-client): per tenant labelled `tenant`, `tier`
 * and `state`, per cluster labelled `tier`. Rates and the peak are over the sampled interval;
 * `_total` counters are PostgreSQL's own, since its statistics were last reset. Written as a
 * node_exporter textfile (`--metrics <file>`) or served over HTTP (`--serve <port>`).
 */

export const METRICS_CONTENT_TYPE = new Registry().contentType;

const TENANT_LABELS = ["tenant", "tier", "state"] as const;

type TenantGauge = [string, string, (t: TenantUsage) => number | null];

const TENANT_GAUGES: TenantGauge[] = [
  ["connections", "Sessions of the tenant's logins now.", (t) => t.connections.now],
  [
    "connections_peak",
    "Highest count of the tenant's sessions sampled over the interval.",
    (t) => t.connections.peak,
  ],
  [
    "connection_limit",
    "Sessions the tenant's logins may hold together.",
    (t) => t.connections.limit,
  ],
  [
    "statement_time_ms_per_second",
    "Statement time of the tenant's sessions per second (its load).",
    (t) => t.perSecond.activeMs,
  ],
  [
    "load_share",
    "The tenant's share of its cluster's tenant statement time over the interval (0-1).",
    (t) => t.loadShare,
  ],
  [
    "transactions_per_second",
    "Commits and rollbacks per second over the interval.",
    (t) => t.perSecond.xacts,
  ],
  [
    "rows_read_per_second",
    "Rows returned by scans per second over the interval.",
    (t) => t.perSecond.rowsRead,
  ],
  [
    "rows_written_per_second",
    "Rows inserted, updated and deleted per second over the interval.",
    (t) => t.perSecond.rowsWritten,
  ],
  [
    "temp_bytes_per_second",
    "Temporary file bytes per second over the interval.",
    (t) => t.perSecond.tempBytes,
  ],
  ["database_size_bytes", "Size of the tenant's database.", (t) => t.sizeBytes],
  [
    "database_growth_bytes_per_hour",
    "Growth of the tenant's database over the interval, per hour.",
    (t) => t.growthBytesPerHour,
  ],
  [
    "cache_hit_ratio",
    "Buffer hits over block accesses over the interval (0-1).",
    (t) => t.interval.cacheHitRatio,
  ],
];

type TenantCounter = [string, string, (t: TenantUsage) => number];

const TENANT_COUNTERS: TenantCounter[] = [
  [
    "transactions_total",
    "Commits and rollbacks since the statistics reset.",
    (t) => t.sinceReset.xacts,
  ],
  [
    "rows_read_total",
    "Rows returned by scans since the statistics reset.",
    (t) => t.sinceReset.rowsRead,
  ],
  [
    "rows_written_total",
    "Rows inserted, updated and deleted since the statistics reset.",
    (t) => t.sinceReset.rowsWritten,
  ],
  [
    "temp_bytes_total",
    "Temporary file bytes since the statistics reset.",
    (t) => t.sinceReset.tempBytes,
  ],
  ["deadlocks_total", "Deadlocks since the statistics reset.", (t) => t.sinceReset.deadlocks],
];

/** The Prometheus text exposition of a report (and its advice, as `pgtenants_tenant_advice`). */
export async function renderMetrics(
  report: UsageReport,
  advice?: readonly Advice[],
): Promise<string> {
  const registry = new Registry();
  const labels = (t: TenantUsage) => ({
    tenant: t.tenant,
    tier: t.tier,
    state: t.movingIn ? "moving-in" : t.state,
  });
  const deployed = report.tenants.filter((t) => t.deployed);
  for (const [name, help, value] of TENANT_GAUGES) {
    const gauge = new Gauge({
      name: `pgtenants_tenant_${name}`,
      help,
      labelNames: TENANT_LABELS,
      registers: [registry],
    });
    for (const t of deployed) {
      const v = value(t);
      if (v !== null) gauge.set(labels(t), v);
    }
  }
  for (const [name, help, value] of TENANT_COUNTERS) {
    const counter = new Counter({
      name: `pgtenants_tenant_${name}`,
      help,
      labelNames: TENANT_LABELS,
      registers: [registry],
    });
    for (const t of deployed) counter.inc(labels(t), value(t));
  }
  const cluster = (
    name: string,
    help: string,
    value: (c: UsageReport["clusters"][number]) => number | null,
  ) => {
    const gauge = new Gauge({
      name: `pgtenants_cluster_${name}`,
      help,
      labelNames: ["tier"],
      registers: [registry],
    });
    for (const c of report.clusters) {
      const v = value(c);
      if (v !== null) gauge.set({ tier: c.tier }, v);
    }
  };
  cluster("connections", "Client sessions on the cluster now.", (c) => c.connections.now);
  cluster(
    "connections_peak",
    "Highest count of client sessions sampled over the interval.",
    (c) => c.connections.peak,
  );
  cluster("max_connections", "The server's max_connections.", (c) => c.connections.maxConnections);
  cluster(
    "tenant_slots",
    "Connection slots left to tenant logins (the stack's budget).",
    (c) => c.connections.tenantSlots,
  );
  cluster(
    "tenant_connection_limits",
    "What the tenants' connection limits add up to.",
    (c) => c.connections.tenantLimits,
  );
  cluster(
    "pooler_server_connections",
    "The most server connections the cluster's pooler opens.",
    (c) => c.connections.pooler,
  );
  cluster(
    "statement_time_ms_per_second",
    "Statement time per second in the cluster's tenant databases.",
    (c) => c.perSecond.activeMs,
  );
  new Gauge({
    name: "pgtenants_usage_interval_seconds",
    help: "Length of the sampled interval.",
    registers: [registry],
  }).set(report.intervalSeconds);
  if (advice !== undefined) {
    const g = new Gauge({
      name: "pgtenants_tenant_advice",
      help: "1 for each tenant `usage --advise` names: action up, over or down, and the tier to move to.",
      labelNames: ["tenant", "tier", "action", "to"],
      registers: [registry],
    });
    for (const a of advice)
      g.set({ tenant: a.tenant, tier: a.tier, action: a.action, to: a.to ?? "" }, 1);
  }
  return registry.metrics();
}
