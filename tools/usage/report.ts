import type { StackConfig } from "../../infra/config";
import type { Tenant, TenantState } from "../../infra/manifest";
import {
  buildTenantModel,
  clusterBudgets,
  FleetModel,
  TenantModel,
  tenantConnections,
  tenantsOnTier,
} from "../../infra/model";
import type { LoginKind } from "../../infra/naming";
import { poolerSpec } from "../../infra/pooler";
import type { ClusterSample, DatabaseCounters } from "./sample";

/**
 * The figures of `npm run usage`, computed from two samples of each cluster and the sessions
 * polled between them (pure: no I/O). Per tenant: connections against its limit, rates over
 * the interval, totals since the statistics reset, size and growth, and its share of its
 * cluster's load; per cluster: the totals against its connection budget. "Load" is statement
 * time (pg_stat_database.active_time): how long the tenant's sessions kept the server busy,
 * whatever the mix of reads and writes.
 */

/** Sessions polled between the two samples: the highest count seen. */
export interface PeakSessions {
  /** Client sessions on the cluster, all databases and roles. */
  cluster: number;
  /** Per tenant database: its logins' sessions together. */
  databases: Record<string, number>;
  /** Per tenant database and login. */
  logins: Record<string, Record<string, number>>;
  samples: number;
}

export interface UsageInput {
  cfg: StackConfig;
  /** The whole manifest's fleet (a cluster's figures need every tenant on it). */
  fleet: FleetModel;
  first: Record<string, ClusterSample>;
  last: Record<string, ClusterSample>;
  peaks: Record<string, PeakSessions>;
}

/** Counts over the interval (or since the statistics reset). */
export interface Counts {
  xacts: number;
  rollbacks: number;
  rowsRead: number;
  rowsWritten: number;
  inserted: number;
  updated: number;
  deleted: number;
  tempFiles: number;
  tempBytes: number;
  deadlocks: number;
  /** Statement time, ms. */
  activeMs: number;
  /** Buffer hits over hits and reads; null without any block access. */
  cacheHitRatio: number | null;
}

export interface LoginUsage {
  user: string;
  now: number;
  peak: number;
  limit: number;
}

export interface TenantUsage {
  tenant: string;
  displayName: string;
  tier: string;
  state: TenantState;
  /** The target placement of a declared move (its database waits on this cluster). */
  movingIn: boolean;
  database: string;
  /** False when the cluster has no such database yet (not deployed). */
  deployed: boolean;
  connections: { now: number; peak: number; limit: number; logins: Record<LoginKind, LoginUsage> };
  perSecond: {
    xacts: number;
    rowsRead: number;
    rowsWritten: number;
    tempBytes: number;
    activeMs: number;
  };
  interval: Counts;
  sinceReset: Counts & { since: string | null };
  sizeBytes: number | null;
  growthBytes: number | null;
  growthBytesPerHour: number | null;
  /** This tenant's part of the statement time of its cluster's tenants over the interval (0-1). */
  loadShare: number;
  /** The statistics were reset during the interval: interval figures count from the reset. */
  reset: boolean;
}

export interface ClusterUsage {
  tier: string;
  tenants: number;
  connections: {
    now: number;
    peak: number;
    maxConnections: number;
    /** Slots left to tenant logins (max_connections less the reserved ones, from the stack). */
    tenantSlots: number;
    /** What the tenants' limits add up to (infra/model.ts clusterBudgets). */
    tenantLimits: number;
    /** The most server connections the cluster's pooler opens, if it has one. */
    pooler: number | null;
  };
  perSecond: { xacts: number; rowsRead: number; rowsWritten: number; activeMs: number };
  /** Statement time per second in the cluster's other databases (maintenance, operators). */
  otherActiveMsPerSecond: number;
  sizeBytes: number | null;
}

export interface UsageReport {
  stack: string;
  /** When the interval ended (ISO). */
  at: string;
  intervalSeconds: number;
  connectionSamples: number;
  clusters: ClusterUsage[];
  /** Sorted by load: statement time per second, then rows written, then rows read. */
  tenants: TenantUsage[];
}

/** A database with nothing counted yet. */
export const ZERO: Omit<DatabaseCounters, "database" | "statsReset"> = {
  connections: 0,
  xactCommit: 0,
  xactRollback: 0,
  blksRead: 0,
  blksHit: 0,
  tupReturned: 0,
  tupInserted: 0,
  tupUpdated: 0,
  tupDeleted: 0,
  tempFiles: 0,
  tempBytes: 0,
  deadlocks: 0,
  activeMs: 0,
};

/** The cumulative counters: they only grow until a reset. */
const COUNTERS = [
  "xactCommit",
  "xactRollback",
  "blksRead",
  "blksHit",
  "tupReturned",
  "tupInserted",
  "tupUpdated",
  "tupDeleted",
  "tempFiles",
  "tempBytes",
  "deadlocks",
  "activeMs",
] as const;

function counts(d: Omit<DatabaseCounters, "database" | "statsReset">): Counts {
  const blocks = d.blksHit + d.blksRead;
  return {
    xacts: d.xactCommit + d.xactRollback,
    rollbacks: d.xactRollback,
    rowsRead: d.tupReturned,
    rowsWritten: d.tupInserted + d.tupUpdated + d.tupDeleted,
    inserted: d.tupInserted,
    updated: d.tupUpdated,
    deleted: d.tupDeleted,
    tempFiles: d.tempFiles,
    tempBytes: d.tempBytes,
    deadlocks: d.deadlocks,
    activeMs: d.activeMs,
    cacheHitRatio: blocks === 0 ? null : d.blksHit / blocks,
  };
}

/** The change between two samples of one database; a reset (or a counter going down) counts from zero. */
function delta(
  before: DatabaseCounters | undefined,
  after: DatabaseCounters,
): { counters: Omit<DatabaseCounters, "database" | "statsReset">; reset: boolean } {
  const reset =
    before === undefined ||
    before.statsReset !== after.statsReset ||
    COUNTERS.some((k) => after[k] < before[k]);
  const base = reset || before === undefined ? ZERO : before;
  const counters = { ...ZERO };
  for (const k of COUNTERS) counters[k] = after[k] - base[k];
  counters.connections = after.connections;
  return { counters, reset: reset && before !== undefined };
}

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

function tenantUsage(
  model: TenantModel,
  movingIn: boolean,
  first: ClusterSample,
  last: ClusterSample,
  peaks: PeakSessions,
  seconds: number,
): TenantUsage {
  const db = model.database.name;
  const after = last.databases[db];
  const before = first.databases[db];
  const logins = {} as Record<LoginKind, LoginUsage>;
  for (const role of model.roles) {
    if (role.kind !== "rw" && role.kind !== "ro") continue;
    logins[role.kind] = {
      user: role.name,
      now: last.logins[db]?.[role.name] ?? 0,
      peak: peaks.logins[db]?.[role.name] ?? 0,
      limit: role.login ? role.connectionLimit : 0,
    };
  }
  const now = logins.rw.now + logins.ro.now;
  const { counters, reset } =
    after === undefined ? { counters: ZERO, reset: false } : delta(before, after);
  const interval = counts(counters);
  const size = after?.sizeBytes ?? null;
  const growth = size !== null && before?.sizeBytes !== undefined ? size - before.sizeBytes : null;
  return {
    tenant: model.id,
    displayName: model.displayName,
    tier: model.tier,
    state: model.state,
    movingIn,
    database: db,
    deployed: after !== undefined,
    connections: {
      now,
      peak: Math.max(now, peaks.databases[db] ?? 0),
      limit: tenantConnections(model),
      logins,
    },
    perSecond: {
      xacts: round(interval.xacts / seconds),
      rowsRead: round(interval.rowsRead / seconds),
      rowsWritten: round(interval.rowsWritten / seconds),
      tempBytes: round(interval.tempBytes / seconds),
      activeMs: round(interval.activeMs / seconds),
    },
    interval,
    sinceReset: { ...counts(after ?? ZERO), since: after?.statsReset ?? null },
    sizeBytes: size,
    growthBytes: growth,
    growthBytesPerHour: growth === null ? null : round((growth / seconds) * 3600, 0),
    loadShare: 0,
    reset,
  };
}

/** Load order: statement time per second, rows written, rows read, then the id. */
export function byLoad(a: TenantUsage, b: TenantUsage): number {
  return (
    b.perSecond.activeMs - a.perSecond.activeMs ||
    b.interval.rowsWritten - a.interval.rowsWritten ||
    b.interval.rowsRead - a.interval.rowsRead ||
    (a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : 0)
  );
}

export function buildUsageReport(input: UsageInput): UsageReport {
  const { cfg, fleet } = input;
  const budgets = new Map(clusterBudgets(cfg, fleet).map((b) => [b.tier, b]));
  const tenants: TenantUsage[] = [];
  const clusters: ClusterUsage[] = [];
  let longest = 0;
  for (const tier of Object.keys(cfg.clusters)) {
    const first = input.first[tier];
    const last = input.last[tier];
    if (first === undefined || last === undefined) continue;
    const seconds = Math.max(0.001, (last.at - first.at) / 1000);
    longest = Math.max(longest, seconds);
    const own = new Set(fleet.byTier[tier] ?? []);
    const rows = tenantsOnTier(fleet, tier).map((m) =>
      tenantUsage(m, !own.has(m), first, last, input.peaks[tier], seconds),
    );
    const totalActive = rows.reduce((sum, r) => sum + r.interval.activeMs, 0);
    for (const r of rows)
      r.loadShare = totalActive > 0 ? round(r.interval.activeMs / totalActive, 4) : 0;
    tenants.push(...rows);

    const tenantDbs = new Set(rows.map((r) => r.database));
    let otherActive = 0;
    for (const [name, after] of Object.entries(last.databases)) {
      if (tenantDbs.has(name)) continue;
      otherActive += delta(first.databases[name], after).counters.activeMs;
    }
    const budget = budgets.get(tier);
    const sum = (f: (r: TenantUsage) => number) => rows.reduce((s, r) => s + f(r), 0);
    const sizes = rows.filter((r) => r.sizeBytes !== null);
    clusters.push({
      tier,
      tenants: rows.length,
      connections: {
        now: last.connections,
        peak: Math.max(last.connections, first.connections, input.peaks[tier].cluster),
        maxConnections: last.maxConnections,
        tenantSlots: budget?.slots ?? 0,
        tenantLimits: budget?.requested ?? 0,
        pooler: poolerSpec(cfg, tier, tenantsOnTier(fleet, tier))?.serverConnections ?? null,
      },
      perSecond: {
        xacts: round(sum((r) => r.perSecond.xacts)),
        rowsRead: round(sum((r) => r.perSecond.rowsRead)),
        rowsWritten: round(sum((r) => r.perSecond.rowsWritten)),
        activeMs: round(sum((r) => r.perSecond.activeMs)),
      },
      otherActiveMsPerSecond: round(otherActive / seconds),
      sizeBytes: sizes.length === 0 ? null : sizes.reduce((s, r) => s + (r.sizeBytes ?? 0), 0),
    });
  }
  const at = Math.max(...Object.values(input.last).map((s) => s.at));
  return {
    stack: cfg.stack,
    at: new Date(at).toISOString(),
    intervalSeconds: round(longest, 1),
    connectionSamples: Math.min(...Object.values(input.peaks).map((p) => p.samples)),
    clusters,
    tenants: tenants.sort(byLoad),
  };
}

/** The model a tenant would have on another tier (its limits from that tier unless its file sets them). */
export function modelOnTier(tenant: Tenant, tier: string, cfg: StackConfig): TenantModel {
  return buildTenantModel({ ...tenant, tier, move: undefined }, cfg);
}
