import type { PoolSnapshot } from "./pool";

/** What a service exports about its tenant connections: a plain object, safe to serialise. */
export interface ClientMetrics extends PoolSnapshot {
  maxConnections: number;
  maxConnectionsPerTenant: number;
  /** Connections re-tried with re-fetched credentials after a rejected password (28P01, or 08P01 from PgBouncer). */
  authRetries: number;
}

/** Renders metrics in the Prometheus text exposition format (version 0.0.4). */
export function renderPrometheus(m: ClientMetrics, prefix = "pgtenants_client"): string {
  const lines: string[] = [];
  const metric = (
    name: string,
    type: "gauge" | "counter",
    help: string,
    samples: Array<[string, number]>,
  ) => {
    lines.push(`# HELP ${prefix}_${name} ${help}`, `# TYPE ${prefix}_${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${prefix}_${name}${labels} ${value}`);
  };
  const perTenant = (
    pick: (t: PoolSnapshot["tenants"][string]) => number,
  ): Array<[string, number]> =>
    Object.keys(m.tenants)
      .sort()
      .map((id) => [`{tenant="${id}"}`, pick(m.tenants[id])]);

  metric("connections_max", "gauge", "Cap on server connections over all tenants.", [
    ["", m.maxConnections],
  ]);
  metric("tenant_connections_max", "gauge", "Cap on server connections per tenant.", [
    ["", m.maxConnectionsPerTenant],
  ]);
  metric("connections_open", "gauge", "Open server connections over all tenants.", [["", m.open]]);
  metric("connections_busy", "gauge", "Connections lent to requests over all tenants.", [
    ["", m.busy],
  ]);
  metric("connections_idle", "gauge", "Idle pooled connections over all tenants.", [["", m.idle]]);
  metric("requests_waiting", "gauge", "Requests queued for a connection.", [["", m.waiting]]);
  metric("waits_total", "counter", "Requests that had to queue for a connection.", [["", m.waits]]);
  metric("wait_seconds_total", "counter", "Time requests spent queued.", [["", m.waitMs / 1000]]);
  metric("wait_timeouts_total", "counter", "Requests that gave up waiting.", [
    ["", m.waitTimeouts],
  ]);
  metric("connects_total", "counter", "Server connections opened.", [["", m.connects]]);
  metric("connect_failures_total", "counter", "Server connections that failed to open.", [
    ["", m.connectFailures],
  ]);
  metric("evictions_total", "counter", "Idle connections closed to make room.", [
    ["", m.evictions],
  ]);
  metric(
    "auth_retries_total",
    "counter",
    "Connects retried after re-fetching rotated credentials.",
    [["", m.authRetries]],
  );
  metric(
    "tenant_connections_open",
    "gauge",
    "Open server connections per tenant.",
    perTenant((t) => t.open),
  );
  metric(
    "tenant_requests_waiting",
    "gauge",
    "Requests queued per tenant.",
    perTenant((t) => t.waiting),
  );
  metric(
    "tenant_waits_total",
    "counter",
    "Requests that had to queue, per tenant.",
    perTenant((t) => t.waits),
  );
  return `${lines.join("\n")}\n`;
}
