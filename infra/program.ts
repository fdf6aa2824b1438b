import * as postgresql from "@pulumi/postgresql";
import * as pulumi from "@pulumi/pulumi";
import { Tenant, TenantSecrets, TenantSummary } from "./components/tenant";
import type { StackConfig } from "./config";
import { renderFleetHba } from "./hba";
import type { Tenant as TenantFile } from "./manifest";
import { buildFleetModel } from "./model";
import { clusterProviderName } from "./naming";
import { tenantsOfShard } from "./shards";

/** The stack outputs. Everything secret sits under `credentials`, which is a secret as a whole. */
export interface FleetOutputs {
  tenants: Record<string, TenantSummary>;
  /** Per tenant, the login credentials and data key (local key provider only). */
  credentials?: pulumi.Output<Record<string, TenantSecrets>>;
  /** Per cluster (tier), the rendered pg_hba.conf. */
  pgHba: Record<string, string>;
}

/**
 * Declares the fleet of a stack: one provider per cluster, one Tenant per tenant of the stack's
 * shard (`tenantsOfShard`), and every cluster's pg_hba.conf from the whole manifest.
 * No side effect happens until this is called; infra/index.ts calls it once per run.
 * Between tenants it yields to the event loop, so the runtime sends (and, in a preview or under
 * mocks, settles) one tenant's registrations before the next is declared: declared in one
 * synchronous loop, every pending registration of the fleet is held in memory at once, and the
 * peak memory of a run grows several times faster with the fleet (bench/RESULTS.md).
 */
export async function declareFleet(
  cfg: StackConfig,
  manifest: readonly TenantFile[],
  clusterPasswords: Record<string, pulumi.Input<string>>,
): Promise<FleetOutputs> {
  const hbaFleet = buildFleetModel(manifest, cfg);
  const fleet =
    cfg.shard === undefined ? hbaFleet : buildFleetModel(tenantsOfShard(cfg, manifest), cfg);

  const providers: Record<string, postgresql.Provider> = {};
  for (const [tier, cluster] of Object.entries(cfg.clusters)) {
    providers[tier] = new postgresql.Provider(clusterProviderName(tier), {
      host: cluster.host,
      port: cluster.port,
      database: cluster.database,
      username: cluster.username,
      password: clusterPasswords[tier],
      sslmode: cluster.sslmode,
      superuser: false,
      maxConnections: cluster.maxConnections,
      connectTimeout: cluster.connectTimeout,
    });
  }

  const summaries: Record<string, TenantSummary> = {};
  const secrets: Record<string, pulumi.Output<TenantSecrets>> = {};
  for (const model of fleet.tenants) {
    const tenant = new Tenant(model.logical.tenant, {
      model,
      cluster: cfg.clusters[model.tier],
      keys: cfg.keys,
      provider: providers[model.tier],
      ...(model.move !== undefined
        ? {
            moveTarget: {
              model: model.move.target,
              cluster: cfg.clusters[model.move.to],
              provider: providers[model.move.to],
            },
          }
        : {}),
    });
    summaries[model.id] = tenant.summary;
    secrets[model.id] = tenant.secrets;
    await nextTurn();
  }

  return {
    tenants: summaries,
    ...(cfg.keys.provider === "local"
      ? { credentials: pulumi.secret(pulumi.output(secrets)) }
      : {}),
    pgHba: renderFleetHba(cfg, hbaFleet),
  };
}

/** Resolves after the event loop has run pending I/O and timers once. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
