import * as path from "path";
import { loadClusterPasswords, loadStackConfig } from "./programConfig";
import { loadManifest } from "./manifest";
import { reservedNames } from "./model";
import { declareFleet } from "./program";

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
    today: new Date().toISOString().slice(0, 10),
  });
  // The whole manifest is validated above; the stack declares only its shard of it.
  return withoutPromiseStackTraces(() => declareFleet(cfg, tenants, passwords));
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
