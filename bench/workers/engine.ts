import * as fs from "fs";
import * as path from "path";
import { performance } from "perf_hooks";
import { Fleet, FleetTenant, provisionFleet } from "../../harness/fleet";
import { runWorker } from "../support/worker";
import { captureStatements, ids, renamed, replay } from "./provision";

/**
 * The real engine and plugins on one embedded cluster: `pulumi up` (after its preview, as the
 * tools run it) of 1, 10 and 100 new tenants against the floor of the same statements sent
 * directly (the applier's, proven equal to the provider's by the engine lane's fidelity test);
 * a no-change preview and an `up --refresh` of a shard; the state file's size per tenant.
 * Argument: JSON `EngineJob`; prints one JSON line (`EngineResult`).
 */
export interface EngineJob {
  /** Cumulative fleet sizes: each step adds the new tenants and runs `pulumi up`. */
  steps: number[];
  /** The shard size the preview and refresh are measured at (reached by the last step). */
  shard: number;
}

export interface EngineResult {
  ups: Array<{ tenants: number; added: number; ms: number; msPerTenant: number }>;
  floorMsPerTenant: number;
  shard: { tenants: number; previewMs: number; refreshUpMs: number };
  stateBytes: number;
  stateBytesPerTenant: number;
}

/** Tenants with small limits: hundreds of them fit one embedded cluster's connection budget. */
const tenants = (n: number): FleetTenant[] =>
  ids(n, "e").map((id) => ({ id, tier: "standard", limits: { connectionLimit: 1 } }));
const SERVER = { maxConnections: 200, overcommit: 10 };

async function floorPerTenant(n: number): Promise<number> {
  const fleet: Fleet = await provisionFleet({
    tiers: ["standard"],
    tenants: [],
    server: SERVER,
  });
  try {
    const log = captureStatements(fleet);
    await fleet.apply(tenants(1));
    const one = log.filter((l) => l.database === "postgres" || l.database.includes("e00000"));
    const streams = ids(n, "f").flatMap((id) => renamed(one, "e00000", id));
    const { ms } = await replay(fleet, streams);
    return ms / n;
  } finally {
    await fleet.stop();
  }
}

async function run(job: EngineJob): Promise<EngineResult> {
  const fleet = await provisionFleet({
    tiers: ["standard"],
    tenants: [],
    deploy: "engine",
    server: SERVER,
    // The provider's pool as a production stack has it (the engine runs 9 operations at once).
    cluster: () => ({ maxConnections: 10 }),
  });
  try {
    const ups: EngineResult["ups"] = [];
    let have = 0;
    for (const n of job.steps) {
      const started = performance.now();
      await fleet.apply(tenants(n));
      const ms = performance.now() - started;
      ups.push({ tenants: n, added: n - have, ms, msPerTenant: ms / (n - have) });
      have = n;
    }
    if (have !== job.shard) await fleet.apply(tenants(job.shard));
    const previewStarted = performance.now();
    await fleet.engine!.preview({ expectNoChanges: true });
    const previewMs = performance.now() - previewStarted;
    const refreshStarted = performance.now();
    await fleet.engine!.refreshUp();
    const refreshUpMs = performance.now() - refreshStarted;
    const stateFile = path.join(
      fleet.root,
      "state",
      ".pulumi",
      "stacks",
      "pg-tenants",
      "integration.json",
    );
    const stateBytes = fs.statSync(stateFile).size;
    return {
      ups,
      floorMsPerTenant: await floorPerTenant(Math.min(job.shard, 50)),
      shard: { tenants: job.shard, previewMs, refreshUpMs },
      stateBytes,
      stateBytesPerTenant: stateBytes / job.shard,
    };
  } finally {
    await fleet.stop();
  }
}

runWorker(__filename, run);
