import { describe, expect, it } from "@jest/globals";
import { parseStackConfig } from "../../infra/config";
import type { Tenant } from "../../infra/manifest";
import { buildFleetModel } from "../../infra/model";
import { UsageError } from "../../tools/lib/cli";
import { parseInterval, parseListen } from "../../tools/usage";
import { adviseTenants } from "../../tools/usage/advice";
import { renderUsageHtml } from "../../tools/usage/html";
import { renderMetrics } from "../../tools/usage/metrics";
import { renderUsageMarkdown, renderUsageText } from "../../tools/usage/render";
import { buildUsageReport, PeakSessions, ZERO } from "../../tools/usage/report";
import type { ClusterSample, DatabaseCounters } from "../../tools/usage/sample";

const cfg = parseStackConfig("usage-test", {
  template: "customer_template_v1",
  clusters: {
    standard: {
      host: "h1",
      username: "p",
      connectionLimit: 10,
      server: { maxConnections: 100 },
      advice: { maxLoadShare: 0.5, minLoadMsPerSecond: 10, maxConnectionUse: 0.8, maxSizeMb: 100 },
    },
    premium: {
      host: "h2",
      username: "p",
      connectionLimit: 50,
      advice: { maxLoadShare: 0.6, minLoadMsPerSecond: 10, maxSizeMb: 1000 },
    },
  },
  keys: { provider: "local" },
  hba: { clientCidrs: ["10.0.0.0/8"], adminCidrs: ["10.0.0.0/8"] },
});

const tenant = (id: string, tier: string, extra: Partial<Tenant> = {}): Tenant => ({
  id,
  displayName: `Tenant ${id}`,
  tier,
  state: "active",
  file: `tenants/${id}.yaml`,
  ...extra,
});

const TENANTS = [
  tenant("heavy", "standard"),
  tenant("quiet", "standard"),
  tenant("crowded", "standard"),
  tenant("big", "premium"),
  tenant("idle", "premium"),
];
const fleet = buildFleetModel(TENANTS, cfg);

const MB = 1024 * 1024;

function counters(database: string, c: Partial<DatabaseCounters> = {}): DatabaseCounters {
  return { database, ...ZERO, statsReset: null, sizeBytes: 8 * MB, ...c };
}

function sample(
  tier: string,
  at: number,
  dbs: DatabaseCounters[],
  logins: ClusterSample["logins"] = {},
): ClusterSample {
  return {
    tier,
    at,
    maxConnections: 100,
    connections: 7,
    databases: Object.fromEntries(dbs.map((d) => [d.database, d])),
    logins,
  };
}

const T0 = Date.parse("2026-12-01T10:00:00Z");
const T1 = T0 + 20_000;

const first = {
  standard: sample("standard", T0, [
    counters("tenant_heavy", { xactCommit: 100, tupInserted: 1000, activeMs: 500 }),
    counters("tenant_quiet", { xactCommit: 10, tupReturned: 50, blksHit: 90, blksRead: 10 }),
    counters("tenant_crowded", { activeMs: 10 }),
    counters("postgres", { activeMs: 1000 }),
  ]),
  premium: sample("premium", T0, [
    counters("tenant_big", { sizeBytes: 900 * MB, activeMs: 100 }),
    counters("tenant_idle", { xactCommit: 5, statsReset: "2026-11-01 00:00:00+00" }),
  ]),
};
const last = {
  standard: sample(
    "standard",
    T1,
    [
      counters("tenant_heavy", {
        xactCommit: 300,
        xactRollback: 2,
        tupInserted: 6000,
        tupUpdated: 1000,
        tupDeleted: 500,
        tupReturned: 2000,
        tempFiles: 1,
        tempBytes: 2 * MB,
        deadlocks: 1,
        activeMs: 8500,
        blksHit: 900,
        blksRead: 100,
        sizeBytes: 10 * MB,
      }),
      counters("tenant_quiet", {
        xactCommit: 30,
        tupReturned: 250,
        blksHit: 190,
        blksRead: 10,
        activeMs: 400,
      }),
      counters("tenant_crowded", { xactCommit: 40, activeMs: 410 }),
      counters("postgres", { activeMs: 3000 }),
    ],
    {
      tenant_heavy: { tenant_heavy_rw: 2, tenant_heavy_ro: 1 },
      tenant_crowded: { tenant_crowded_rw: 9, tenant_crowded_ro: 8 },
    },
  ),
  premium: sample("premium", T1, [
    counters("tenant_big", { sizeBytes: 920 * MB, activeMs: 100 }),
    // Reset during the interval: counted from the reset.
    counters("tenant_idle", { xactCommit: 3, statsReset: "2026-12-01 10:00:05+00" }),
  ]),
};
const peaks: Record<string, PeakSessions> = {
  standard: {
    cluster: 25,
    databases: { tenant_heavy: 4, tenant_crowded: 17 },
    logins: {
      tenant_heavy: { tenant_heavy_rw: 3, tenant_heavy_ro: 1 },
      tenant_crowded: { tenant_crowded_rw: 9, tenant_crowded_ro: 8 },
    },
    samples: 19,
  },
  premium: { cluster: 3, databases: {}, logins: {}, samples: 19 },
};

const report = buildUsageReport({ cfg, fleet, first, last, peaks });

describe("usage figures from two samples", () => {
  it("ranks tenants by load and computes each figure over the interval", () => {
    expect(report.tenants.map((t) => t.tenant)).toEqual([
      "heavy",
      // quiet and crowded ran as long; quiet read more rows.
      "quiet",
      "crowded",
      "big",
      "idle",
    ]);
    const heavy = report.tenants[0];
    expect(heavy.perSecond).toEqual({
      xacts: 10.1,
      rowsRead: 100,
      rowsWritten: 325,
      tempBytes: 104857.6,
      activeMs: 400,
    });
    expect(heavy.interval).toMatchObject({
      inserted: 5000,
      updated: 1000,
      deleted: 500,
      rowsWritten: 6500,
      deadlocks: 1,
      rollbacks: 2,
      cacheHitRatio: 0.9,
    });
    // 8000 of the 8800 ms the standard tenants ran; the maintenance database is not a tenant's.
    expect(heavy.loadShare).toBe(0.9091);
    expect(heavy.connections).toMatchObject({ now: 3, peak: 4, limit: 20 });
    expect(heavy.connections.logins.rw).toEqual({
      user: "tenant_heavy_rw",
      now: 2,
      peak: 3,
      limit: 10,
    });
    expect(heavy.growthBytes).toBe(2 * MB);
    expect(heavy.growthBytesPerHour).toBe(2 * MB * 180);
    expect(heavy.sinceReset).toMatchObject({ xacts: 302, rowsWritten: 7500, since: null });
  });

  it("counts from the reset when the statistics were reset during the interval", () => {
    const idle = report.tenants.find((t) => t.tenant === "idle")!;
    expect(idle.reset).toBe(true);
    expect(idle.interval.xacts).toBe(3);
  });

  it("totals each cluster against its connection budget", () => {
    expect(report.clusters[0]).toEqual({
      tier: "standard",
      tenants: 3,
      connections: {
        now: 7,
        peak: 25,
        maxConnections: 100,
        tenantSlots: 92,
        tenantLimits: 60,
        pooler: null,
      },
      perSecond: { xacts: 13.1, rowsRead: 110, rowsWritten: 325, activeMs: 440 },
      otherActiveMsPerSecond: 100,
      sizeBytes: 26 * MB,
    });
    expect(report.intervalSeconds).toBe(20);
    expect(report.connectionSamples).toBe(19);
  });
});

describe("tier advice", () => {
  const advice = adviseTenants(report, cfg, TENANTS);

  it("names each tenant over a threshold with the evidence and the move to declare", () => {
    expect(advice.map((a) => a.tenant)).toEqual(["heavy", "crowded", "idle"]);
    expect(advice.slice(0, 2)).toEqual([
      {
        tenant: "heavy",
        tier: "standard",
        action: "up",
        to: "premium",
        declare: "move: { to: premium }",
        evidence: ["load: 90.9% of cluster standard's statement time (400 ms/s; threshold 50%)"],
      },
      {
        tenant: "crowded",
        tier: "standard",
        action: "up",
        to: "premium",
        declare: "move: { to: premium }",
        evidence: ["connections: peak 17 of its limit 20 (85%; threshold 80%)"],
      },
    ]);
  });

  it("keeps a tenant too large for the lower tier up, and sends an idle one down", () => {
    // big: 920 MB is over half of standard's 100 MB; idle has nothing against it.
    expect(advice.find((a) => a.tenant === "big")).toBeUndefined();
    expect(advice.find((a) => a.tenant === "idle")).toEqual({
      tenant: "idle",
      tier: "premium",
      action: "down",
      to: "standard",
      declare: "move: { to: standard }",
      evidence: [
        "load: would be 0% of cluster standard's statement time (0 ms/s; standard's threshold 50%)",
        "connections: peak 0 against the limit 20 it would have on standard (threshold 80%)",
        "size: 8.0 MB (standard's threshold 100.0 MB)",
      ],
    });
  });

  it("says when there is no tier above", () => {
    const onTop = adviseTenants(
      {
        ...report,
        tenants: report.tenants.map((t) =>
          t.tenant === "big" ? { ...t, sizeBytes: 2000 * MB } : t,
        ),
      },
      cfg,
      TENANTS,
    ).find((a) => a.tenant === "big");
    expect(onTop).toEqual({
      tenant: "big",
      tier: "premium",
      action: "over",
      evidence: [
        "size: 2.0 GB (threshold 1000.0 MB)",
        "no tier above premium: raise its limits in its file, or give it a cluster of its own",
      ],
    });
  });

  it("leaves tenants with a declared move alone", () => {
    const moving = TENANTS.map((t) => (t.id === "heavy" ? { ...t, move: { to: "premium" } } : t));
    expect(adviseTenants(report, cfg, moving).map((a) => a.tenant)).not.toContain("heavy");
  });
});

describe("usage output", () => {
  const advice = adviseTenants(report, cfg, TENANTS);

  it("prints tables sorted by load, the clusters and the advice", () => {
    const text = renderUsageText(report, advice).split("\n");
    expect(text[0]).toBe(
      "usage of stack usage-test over 20 s (ended 2026-12-01T10:00:20.000Z; 19 connection samples)",
    );
    const heavy = text.find((l) => l.startsWith("heavy "))!;
    expect(heavy.split(/\s{2,}/)).toEqual([
      "heavy",
      "standard",
      "active",
      "400",
      "90.9%",
      "10.1",
      "100",
      "325",
      "3/4/20",
      "2.0 MB",
      "1",
      "10.0 MB",
      "2.0 MB",
      "90.0%",
    ]);
    expect(text).toContain(
      "heavy (standard) is over its tier's thresholds: declare `move: { to: premium }` in its file, then npm run move -- heavy",
    );
    expect(renderUsageMarkdown(report, advice)).toContain(
      "| heavy | standard | active | 400 | 90.9% | 10.1 | 100 | 325 | 3/4/20 | 2.0 MB | 1 | 10.0 MB | 2.0 MB | 90.0% |",
    );
  });

  it("exposes Prometheus metrics labelled tenant, tier and state", async () => {
    const text = await renderMetrics(report, advice);
    expect(text).toContain(
      'pgtenants_tenant_rows_written_per_second{tenant="heavy",tier="standard",state="active"} 325',
    );
    expect(text).toContain(
      'pgtenants_tenant_load_share{tenant="heavy",tier="standard",state="active"} 0.9091',
    );
    expect(text).toContain(
      'pgtenants_tenant_deadlocks_total{tenant="heavy",tier="standard",state="active"} 1',
    );
    expect(text).toContain('pgtenants_cluster_tenant_slots{tier="standard"} 92');
    expect(text).toContain(
      'pgtenants_tenant_advice{tenant="heavy",tier="standard",action="up",to="premium"} 1',
    );
    expect(text).toContain("# TYPE pgtenants_tenant_transactions_total counter");
  });

  it("renders one self-contained HTML page: a bar per tenant and chart, no script, nothing to load", () => {
    const html = renderUsageHtml(report, advice);
    expect(html).toContain(`content="default-src 'none'; style-src 'unsafe-inline'"`);
    expect(html).not.toMatch(/<script|src=|href=|url\(/);
    expect(html.match(/<g data-tenant=/g)).toHaveLength(5 * 3);
    expect(html).toContain('<g data-tenant="heavy" data-value="0.9091"');
  });

  it("escapes what a tenant file may contain", () => {
    const hostile = { ...report, tenants: [{ ...report.tenants[0], tenant: "<img src=x>" }] };
    expect(renderUsageHtml(hostile)).not.toContain("<img");
  });
});

describe("usage arguments", () => {
  it.each([
    ["60s", 60],
    ["5m", 300],
    ["10", 10],
    ["1h", 3600],
  ])("reads --interval %s as %i s", (text, seconds) => {
    expect(parseInterval(text)).toBe(seconds);
  });

  it.each(["9s", "0", "1d", "abc", "25h"])("refuses --interval %s", (text) => {
    expect(() => parseInterval(text)).toThrow(UsageError);
    expect(() => parseInterval(text)).toThrow(
      "--interval must be from 10s to 24h (e.g. 60s, 5m): PostgreSQL publishes an idle session's statistics up to 10 s late, so shorter samples miss work",
    );
  });

  it("serves on 127.0.0.1 unless told otherwise", () => {
    expect(parseListen("9187")).toEqual({ host: "127.0.0.1", port: 9187 });
    expect(parseListen("0.0.0.0:9187")).toEqual({ host: "0.0.0.0", port: 9187 });
    expect(() => parseListen("99999")).toThrow("--serve takes [host:]port");
  });
});
