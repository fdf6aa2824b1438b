import * as path from "path";
import { loadClusterPasswords, loadStackConfig } from "./config";
import { loadManifest } from "./manifest";
import { renderHba } from "./hba";
import { buildFleetModel, reservedNames } from "./model";
import { declareFleet } from "./program";
import { tenantsOfShard } from "./shards";

/**
 * The composition root, and the only module with side effects: read the stack config, load and
 * validate the tenants manifest (before any resource is declared), declare the fleet, export.
 */
export = async () => {
  const cfg = loadStackConfig();
  const passwords = loadClusterPasswords(cfg);
  const tenants = loadManifest(path.resolve(cfg.tenantsDir), {
    namePrefix: cfg.namePrefix,
    tiers: Object.keys(cfg.clusters),
    reservedNames: reservedNames(cfg),
  });
  // The whole manifest is validated above; the stack declares only its shard of it.
  const outputs = await withoutPromiseStackTraces(() =>
    declareFleet(cfg, tenantsOfShard(cfg, tenants), passwords),
  );
  if (cfg.shard === undefined) return outputs;
  // A cluster's pg_hba.conf must admit every tenant on it, whichever shard declares the tenant.
  const fleet = buildFleetModel(tenants, cfg);
  const pgHba = Object.fromEntries(
    Object.entries(fleet.byTier).map(([tier, models]) => [
      tier,
      renderHba(tier, cfg.clusters[tier].username, cfg.hba, [...models, ...fleet.movingIn[tier]]),
    ]),
  );
  return { ...outputs, pgHba };
};

/**
 * Runs `declare` with Error.stackTraceLimit at 0. The SDK captures a stack trace for every
 * promise it creates (runtime/debuggable.js) and shows it only when debugging promise leaks
 * (PULUMI_DEBUG_PROMISE_LEAKS); under the runner's source maps that capture is most of a run's
 * time (bench/RESULTS.md). Resources keep their source positions: the SDK lifts the limit itself
 * for those. Errors the program reports are InputErrors, whose message says everything.
 */
async function withoutPromiseStackTraces<T>(declare: () => Promise<T>): Promise<T> {
  if (process.env.PULUMI_DEBUG_PROMISE_LEAKS) return declare();
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return await declare();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
