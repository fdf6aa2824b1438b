import type { AdviceConfig, StackConfig } from "../../infra/config";
import type { Tenant } from "../../infra/manifest";
import { tenantConnections } from "../../infra/model";
import { modelOnTier, TenantUsage, UsageReport } from "./report";

/**
 * `usage --advise`: each tenant over one of its tier's thresholds (stack config
 * `clusters.<tier>.advice`) is named with the evidence and the move to declare in its file;
 * a tenant under half of the lower tier's thresholds, on every count, could move down. Tiers are
 * ordered as the stack declares them unless `advice.up`/`advice.down` say otherwise. Advice
 * reads only the sampled interval: sample a busy period (e.g. `--interval 15m`).
 */

export interface Advice {
  tenant: string;
  tier: string;
  /** up: over a threshold with a higher tier to go to; over: over one with none; down: could go down. */
  action: "up" | "over" | "down";
  to?: string;
  /** What to add to the tenant's file, e.g. `move: { to: premium }` (then `npm run move`). */
  declare?: string;
  evidence: string[];
}

/** Under this part of the lower tier's thresholds on every count, a tenant could move down. */
export const DOWN_MARGIN = 0.5;

const pct = (x: number) => `${Math.round(x * 1000) / 10}%`;
const msPerSecond = (x: number) => `${Math.round(x * 10) / 10} ms/s`;
const mb = (bytes: number) => bytes / (1024 * 1024);

export function formatBytes(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

/** The tier a tier's tenants move up or down to: the stack's `advice` or the declared order. */
export function neighbourTier(
  cfg: StackConfig,
  tier: string,
  direction: "up" | "down",
): string | undefined {
  const explicit = cfg.clusters[tier].advice[direction];
  if (explicit !== undefined) return explicit;
  const tiers = Object.keys(cfg.clusters);
  return tiers[tiers.indexOf(tier) + (direction === "up" ? 1 : -1)];
}

function overThresholds(t: TenantUsage, advice: AdviceConfig, tier: string): string[] {
  const evidence: string[] = [];
  if (t.perSecond.activeMs >= advice.minLoadMsPerSecond && t.loadShare > advice.maxLoadShare) {
    evidence.push(
      `load: ${pct(t.loadShare)} of cluster ${tier}'s statement time (${msPerSecond(t.perSecond.activeMs)}; threshold ${pct(advice.maxLoadShare)})`,
    );
  }
  const limit = t.connections.limit;
  if (limit > 0 && t.connections.peak / limit > advice.maxConnectionUse) {
    evidence.push(
      `connections: peak ${t.connections.peak} of its limit ${limit} (${pct(t.connections.peak / limit)}; threshold ${pct(advice.maxConnectionUse)})`,
    );
  }
  if (t.sizeBytes !== null && mb(t.sizeBytes) > advice.maxSizeMb) {
    evidence.push(
      `size: ${formatBytes(t.sizeBytes)} (threshold ${formatBytes(advice.maxSizeMb * 1024 * 1024)})`,
    );
  }
  return evidence;
}

/**
 * Why a tenant would fit the lower tier with room to spare, or undefined if it would not: its
 * share of that cluster's load (its statement time added to the lower cluster's), its peak
 * against the limit it would have there, and its size, each under DOWN_MARGIN of that tier's
 * threshold.
 */
function fitsBelow(
  t: TenantUsage,
  tenant: Tenant,
  down: string,
  cfg: StackConfig,
  report: UsageReport,
): string[] | undefined {
  const advice = cfg.clusters[down].advice;
  const below = report.clusters.find((c) => c.tier === down);
  if (below === undefined || t.sizeBytes === null) return undefined;
  const share =
    t.perSecond.activeMs === 0
      ? 0
      : t.perSecond.activeMs / (below.perSecond.activeMs + t.perSecond.activeMs);
  const limit = tenantConnections(modelOnTier(tenant, down, cfg));
  const loadOk =
    t.perSecond.activeMs < advice.minLoadMsPerSecond || share <= advice.maxLoadShare * DOWN_MARGIN;
  const connectionsOk =
    limit > 0 && t.connections.peak <= limit * advice.maxConnectionUse * DOWN_MARGIN;
  const sizeOk = mb(t.sizeBytes) <= advice.maxSizeMb * DOWN_MARGIN;
  if (!loadOk || !connectionsOk || !sizeOk) return undefined;
  return [
    `load: would be ${pct(share)} of cluster ${down}'s statement time (${msPerSecond(t.perSecond.activeMs)}; ${down}'s threshold ${pct(advice.maxLoadShare)})`,
    `connections: peak ${t.connections.peak} against the limit ${limit} it would have on ${down} (threshold ${pct(advice.maxConnectionUse)})`,
    `size: ${formatBytes(t.sizeBytes)} (${down}'s threshold ${formatBytes(advice.maxSizeMb * 1024 * 1024)})`,
  ];
}

/** Advice for every active tenant on its own tier; tenants already moving are left alone. */
export function adviseTenants(
  report: UsageReport,
  cfg: StackConfig,
  tenants: readonly Tenant[],
): Advice[] {
  const byId = new Map(tenants.map((t) => [t.id, t]));
  const out: Advice[] = [];
  for (const t of report.tenants) {
    const tenant = byId.get(t.tenant);
    if (tenant === undefined || t.movingIn || t.state !== "active" || !t.deployed) continue;
    if (tenant.move !== undefined) continue;
    const over = overThresholds(t, cfg.clusters[t.tier].advice, t.tier);
    if (over.length > 0) {
      const up = neighbourTier(cfg, t.tier, "up");
      out.push(
        up === undefined
          ? {
              tenant: t.tenant,
              tier: t.tier,
              action: "over",
              evidence: [
                ...over,
                `no tier above ${t.tier}: raise its limits in its file, or give it a cluster of its own`,
              ],
            }
          : {
              tenant: t.tenant,
              tier: t.tier,
              action: "up",
              to: up,
              declare: `move: { to: ${up} }`,
              evidence: over,
            },
      );
      continue;
    }
    const down = neighbourTier(cfg, t.tier, "down");
    if (down === undefined) continue;
    const fits = fitsBelow(t, tenant, down, cfg, report);
    if (fits !== undefined) {
      out.push({
        tenant: t.tenant,
        tier: t.tier,
        action: "down",
        to: down,
        declare: `move: { to: ${down} }`,
        evidence: fits,
      });
    }
  }
  return out;
}
