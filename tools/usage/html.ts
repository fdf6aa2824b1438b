import type { Advice } from "./advice";
import { formatBytes } from "./advice";
import type { ClusterUsage, TenantUsage, UsageReport } from "./report";

/**
 * `usage --format html`: one self-contained page (inline CSS and SVG, no script, no request to
 * anywhere: its Content-Security-Policy forbids every load). Per cluster, a bar per tenant for
 * its share of the load, its sampled peak of connections against its limit, and its size; then
 * the tables and the advice. Each bar is a `<g data-tenant data-value>` so a test (or a person
 * with the inspector) can read the figures back.
 */

const BAR = 420;
const LABEL = 150;
const ROW = 24;

const escape = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string,
  );
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

interface Bar {
  tenant: string;
  /** 0-1 of the bar's full width. */
  fill: number;
  value: number;
  label: string;
}

function chart(kind: string, caption: string, bars: readonly Bar[]): string {
  const height = Math.max(1, bars.length) * ROW + 8;
  const rows = bars.map((b, i) => {
    const width = Math.round(Math.min(1, Math.max(0, b.fill)) * BAR);
    return [
      `<g data-tenant="${escape(b.tenant)}" data-value="${b.value}" transform="translate(0 ${i * ROW + 4})">`,
      `<text x="0" y="15" class="name">${escape(b.tenant)}</text>`,
      `<rect x="${LABEL}" y="3" width="${BAR}" height="16" class="track"/>`,
      `<rect x="${LABEL}" y="3" width="${width}" height="16" class="bar ${kind}"/>`,
      `<text x="${LABEL + BAR + 8}" y="15" class="value">${escape(b.label)}</text>`,
      "</g>",
    ].join("");
  });
  return [
    `<figure><figcaption>${escape(caption)}</figcaption>`,
    `<svg class="chart" data-chart="${kind}" width="${LABEL + BAR + 140}" height="${height}" role="img" aria-label="${escape(caption)}">`,
    ...rows,
    "</svg></figure>",
  ].join("\n");
}

function clusterSection(cluster: ClusterUsage, tenants: readonly TenantUsage[]): string {
  const c = cluster.connections;
  const largest = Math.max(1, ...tenants.map((t) => t.sizeBytes ?? 0));
  const rows = tenants.map(
    (t) =>
      `<tr><td>${escape(t.tenant)}${t.movingIn ? " (moving in)" : ""}</td><td>${escape(t.state)}</td><td>${t.perSecond.activeMs}</td><td>${pct(t.loadShare)}</td><td>${t.perSecond.xacts}</td><td>${t.perSecond.rowsRead}</td><td>${t.perSecond.rowsWritten}</td><td>${t.connections.now}/${t.connections.peak}/${t.connections.limit}</td><td>${formatBytes(t.interval.tempBytes)}</td><td>${t.interval.deadlocks}</td><td>${t.sizeBytes === null ? "-" : formatBytes(t.sizeBytes)}</td></tr>`,
  );
  return [
    `<section class="cluster" data-tier="${escape(cluster.tier)}">`,
    `<h2>Cluster ${escape(cluster.tier)}</h2>`,
    `<p>${cluster.tenants} tenant(s); connections now ${c.now}, sampled peak ${c.peak}, max_connections ${c.maxConnections} (${c.tenantSlots} for tenant logins; their limits add up to ${c.tenantLimits}${c.pooler === null ? "" : `; the pooler opens at most ${c.pooler}`}); ${cluster.perSecond.activeMs} ms/s of statement time in tenant databases, ${cluster.perSecond.xacts} transactions/s.</p>`,
    chart(
      "load",
      "Share of the cluster's load (statement time)",
      tenants.map((t) => ({
        tenant: t.tenant,
        fill: t.loadShare,
        value: t.loadShare,
        label: `${pct(t.loadShare)} (${t.perSecond.activeMs} ms/s)`,
      })),
    ),
    chart(
      "connections",
      "Connections: sampled peak against the tenant's limit",
      tenants.map((t) => ({
        tenant: t.tenant,
        fill: t.connections.limit === 0 ? 0 : t.connections.peak / t.connections.limit,
        value: t.connections.peak,
        label: `${t.connections.peak} of ${t.connections.limit}`,
      })),
    ),
    chart(
      "size",
      "Database size",
      tenants.map((t) => ({
        tenant: t.tenant,
        fill: (t.sizeBytes ?? 0) / largest,
        value: t.sizeBytes ?? 0,
        label: t.sizeBytes === null ? "-" : formatBytes(t.sizeBytes),
      })),
    ),
    "<table><thead><tr><th>tenant</th><th>state</th><th>load ms/s</th><th>share</th><th>xact/s</th><th>read/s</th><th>written/s</th><th>conns now/peak/limit</th><th>temp</th><th>deadlocks</th><th>size</th></tr></thead>",
    `<tbody>${rows.join("")}</tbody></table>`,
    "</section>",
  ].join("\n");
}

function adviceSection(advice: readonly Advice[]): string {
  const items = advice.map(
    (a) =>
      `<li data-tenant="${escape(a.tenant)}" data-action="${a.action}"><strong>${escape(a.tenant)}</strong> (${escape(a.tier)}): ${
        a.declare !== undefined
          ? `declare <code>${escape(a.declare)}</code>`
          : "over its tier's thresholds"
      }<ul>${a.evidence.map((e) => `<li>${escape(e)}</li>`).join("")}</ul></li>`,
  );
  return [
    '<section class="advice"><h2>Advice</h2>',
    items.length === 0
      ? "<p>No tenant is over its tier's thresholds or could go down a tier.</p>"
      : `<ul>${items.join("")}</ul>`,
    "</section>",
  ].join("\n");
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1b1f24; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
figure { margin: 12px 0; } figcaption { font-weight: 600; margin-bottom: 4px; }
.chart text { font-size: 12px; fill: #1b1f24; } .track { fill: #eef1f4; }
.bar.load { fill: #c0392b; } .bar.connections { fill: #2471a3; } .bar.size { fill: #7d3c98; }
table { border-collapse: collapse; margin-top: 8px; } th, td { border: 1px solid #d0d7de; padding: 2px 8px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; } code { background: #eef1f4; padding: 0 4px; }
`;

export function renderUsageHtml(report: UsageReport, advice?: readonly Advice[]): string {
  const sections = report.clusters.map((c) =>
    clusterSection(
      c,
      report.tenants.filter((t) => t.tier === c.tier),
    ),
  );
  return [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    `<title>pg-tenants usage of stack ${escape(report.stack)}</title>`,
    `<style>${STYLE}</style></head><body>`,
    `<h1>Usage of stack ${escape(report.stack)}</h1>`,
    `<p>Over ${report.intervalSeconds} s, ended ${escape(report.at)}; ${report.connectionSamples} connection samples. Load is statement time (pg_stat_database.active_time).</p>`,
    ...sections,
    ...(advice !== undefined ? [adviceSection(advice)] : []),
    "</body></html>",
    "",
  ].join("\n");
}
