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
 */
export function declareFleet(
  cfg: StackConfig,
  tenants: readonly TenantFile[],
  clusterPasswords: Record<string, pulumi.Input<string>>,
): FleetOutputs {
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
    });
    summaries[model.id] = tenant.summary;
    secrets[model.id] = tenant.secrets;
  }

  const pgHba = Object.fromEntries(
    Object.entries(fleet.byTier).map(([tier, models]) => [
      tier,
      renderHba(tier, cfg.clusters[tier].username, cfg.hba, models),
    ]),
  );

  return {
    tenants: summaries,
    ...(cfg.keys.provider === "local" ? { credentials: pulumi.secret(pulumi.output(secrets)) } : {}),
    pgHba,
  };
}
