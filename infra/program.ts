import * as postgresql from "@pulumi/postgresql";
import * as pulumi from "@pulumi/pulumi";
import { Tenant, TenantSecrets, TenantSummary } from "./components/tenant";
import { PROJECT, StackConfig, stackFile } from "./config";
import { renderFleetHba } from "./hba";
import { InputError, InputIssue } from "./issues";
import type { Tenant as TenantFile } from "./manifest";
import { buildFleetModel, clusterBudgets, FleetModel } from "./model";
import { clusterProviderName, LoginKind } from "./naming";
import {
  AuthEntry,
  fleetPoolers,
  PoolerOutput,
  poolerOutput,
  poolerProblems,
  renderAuthFile,
} from "./pooler";
import { tenantsOfShard } from "./shards";

/** The stack outputs. Everything secret sits under `credentials`, which is a secret as a whole. */
export interface FleetOutputs {
  tenants: Record<string, TenantSummary>;
  /** Per tenant, the login credentials and data key (local key provider only). */
  credentials?: pulumi.Output<Record<string, TenantSecrets>>;
  /** Per cluster (tier), the rendered pg_hba.conf. */
  pgHba: Record<string, string>;
  /** Per cluster with a pooler: its pgbouncer.ini and PgBouncer hba (no secret in either). */
  pooler?: Record<string, PoolerOutput>;
  /** Per cluster with a pooler, its auth file of the logins' SCRAM verifiers: a secret. */
  poolerAuth?: pulumi.Output<Record<string, string>>;
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
  // Held against the whole manifest: every shard's tenants share the clusters.
  const overBudget = budgetIssues(cfg, hbaFleet);
  if (overBudget.length > 0) {
    throw new InputError(
      "The tenants' connection limits exceed their clusters' budget:",
      overBudget,
    );
  }
  const fleet =
    cfg.shard === undefined ? hbaFleet : buildFleetModel(tenantsOfShard(cfg, manifest), cfg);
  // A pooler that could take more server connections than its cluster has is refused before
  // anything is declared, like an invalid manifest.
  const problems = poolerProblems(cfg, hbaFleet);
  if (problems.length > 0) {
    throw new InputError(
      `The poolers of stack ${cfg.stack} do not fit their clusters:`,
      problems.map((p) => ({
        file: stackFile(cfg.stack),
        field: `${PROJECT}:${p.field}`,
        message: p.message,
      })),
    );
  }

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
  const authEntries: Record<string, Array<pulumi.Output<AuthEntry>>> = {};
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
    // The pooler of each cluster the tenant's logins exist on (a moving tenant's are on both).
    if (model.database.open) {
      for (const tier of [model.tier, ...(model.move !== undefined ? [model.move.to] : [])]) {
        if (cfg.clusters[tier].pooler === undefined) continue;
        for (const role of model.roles.filter((r) => r.login)) {
          const kind = role.kind as LoginKind;
          (authEntries[tier] ??= []).push(
            tenant.verifiers[kind].apply((verifier) => ({ user: role.name, verifier })),
          );
        }
      }
    }
    await nextTurn();
  }
  const poolers = fleetPoolers(cfg, hbaFleet);

  return {
    tenants: summaries,
    ...(cfg.keys.provider === "local"
      ? { credentials: pulumi.secret(pulumi.output(secrets)) }
      : {}),
    pgHba: renderFleetHba(cfg, hbaFleet),
    ...(poolers.length > 0
      ? {
          pooler: Object.fromEntries(poolers.map((p) => [p.tier, poolerOutput(p)])),
          // Each stack's file holds the logins it declares; a cluster shared by shards takes the
          // lines of every stack's file (each login is declared by exactly one stack).
          poolerAuth: pulumi.secret(
            pulumi
              .all(Object.fromEntries(poolers.map((p) => [p.tier, authEntries[p.tier] ?? []])))
              .apply((byTier) =>
                Object.fromEntries(
                  Object.entries(byTier).map(([tier, entries]) => [tier, renderAuthFile(entries)]),
                ),
              ),
          ),
        }
      : {}),
  };
}

/** Resolves after the event loop has run pending I/O and timers once. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The clusters whose tenants' limits exceed their budget, as located problems of the stack file
 * (the fix is there, or in the tenant files the message names). Without this bound a tenant at
 * its limits could take the slots other tenants and the provisioning role need.
 */
export function budgetIssues(cfg: StackConfig, fleet: FleetModel): InputIssue[] {
  return clusterBudgets(cfg, fleet)
    .filter((b) => b.requested > b.allowed)
    .map((b) => {
      const { server } = cfg.clusters[b.tier];
      const largest = [...b.tenants]
        .sort((x, y) => y.connections - x.connections || (x.id < y.id ? -1 : 1))
        .slice(0, 3)
        .map((t) => `${t.id} ${t.connections}`)
        .join(", ");
      return {
        file: stackFile(cfg.stack),
        field: `${PROJECT}:clusters.${b.tier}.server.maxConnections`,
        message: `the logins of ${b.tenants.length} tenant(s) on cluster ${b.tier} may hold ${b.requested} connections together (largest: ${largest}), over the ${b.allowed} the cluster leaves them (max_connections ${server.maxConnections} - ${server.superuserReservedConnections} superuser - ${server.reservedConnections} reserved, overcommit ${server.overcommit}): raise server.maxConnections or overcommit, lower connectionLimit, or move tenants to another tier`,
      };
    });
}
