import * as postgresql from "@pulumi/postgresql";
import * as pulumi from "@pulumi/pulumi";
import { Tenant, TenantSecrets, TenantSummary } from "./components/tenant";
import type { StackConfig } from "./config";
import { renderHba } from "./hba";
import type { Tenant as TenantFile } from "./manifest";
import { buildFleetModel } from "./model";
import { clusterProviderName } from "./naming";

/** The stack outputs. Everything secret sits under `credentials`, which is a secret as a whole. */
export interface FleetOutputs {
  tenants: Record<string, TenantSummary>;
  /** Per tenant, the login credentials and data key (local key provider only). */
  credentials?: pulumi.Output<Record<string, TenantSecrets>>;
  /** Per cluster (tier), the rendered pg_hba.conf. */
  pgHba: Record<string, string>;
}

/**
 * Declares the whole fleet of a stack: one provider per cluster, one Tenant per tenant file.
 * No side effect happens until this is called; infra/index.ts calls it once per run.
 * Between tenants it yields to the event loop, so the runtime sends (and, in a preview or under
 * mocks, settles) one tenant's registrations before the next is declared: declared in one
 * synchronous loop, every pending registration of the fleet is held in memory at once, and the
 * peak memory of a run grows several times faster with the fleet (bench/RESULTS.md).
 */
export async function declareFleet(
  cfg: StackConfig,
  tenants: readonly TenantFile[],
  clusterPasswords: Record<string, pulumi.Input<string>>,
): Promise<FleetOutputs> {
  const fleet = buildFleetModel(tenants, cfg);

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

  const pgHba = Object.fromEntries(
    Object.entries(fleet.byTier).map(([tier, models]) => [
      tier,
      // A tenant moving onto the tier is admitted there already, so its credentials work on
      // the target the moment the move switches over.
      renderHba(tier, cfg.clusters[tier].username, cfg.hba, [...models, ...fleet.movingIn[tier]]),
    ]),
  );

  return {
    tenants: summaries,
    ...(cfg.keys.provider === "local" ? { credentials: pulumi.secret(pulumi.output(secrets)) } : {}),
    pgHba,
  };
}

/** Resolves after the event loop has run pending I/O and timers once. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
