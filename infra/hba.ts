import type { HbaConfig, StackConfig } from "./config";
import { FleetModel, TenantModel, tenantsOnTier } from "./model";

/**
 * Renders a cluster's pg_hba.conf from the tenant model. First match wins in pg_hba, so the
 * order is: admin roles, one line per tenant and client CIDR admitting only that tenant's group
 * to that tenant's database, then an explicit reject for everything else. `poolerCidrs` (where
 * the cluster's pooler connects from) are admitted like client CIDRs, once each.
 */
export function renderHba(
  tier: string,
  provisioner: string,
  hba: HbaConfig,
  tenants: readonly TenantModel[],
  poolerCidrs: readonly string[] = [],
): string {
  const type = hba.connectionType;
  const lines = [
    `# pg_hba.conf of cluster "${tier}", rendered by pg-tenants from the tenants manifest.`,
    "# Do not edit by hand: change tenants/ or the stack config and render again.",
    "# TYPE  DATABASE  USER  ADDRESS  METHOD",
  ];
  for (const user of [provisioner, ...hba.adminUsers]) {
    for (const cidr of hba.adminCidrs) lines.push(`${type} all ${user} ${cidr} scram-sha-256`);
  }
  for (const t of [...tenants].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    // An offboarded tenant is closed: no line admits anyone to its database.
    if (!t.database.open) continue;
    for (const cidr of new Set([...hba.clientCidrs, ...poolerCidrs])) {
      lines.push(`${type} ${t.names.database} +${t.names.group} ${cidr} scram-sha-256`);
    }
  }
  lines.push("local all all reject", "host all all all reject");
  return lines.join("\n") + "\n";
}

/**
 * Every cluster's pg_hba.conf for a fleet: each tier admits its tenants and the tenants moving
 * onto it (so their credentials work on the target the moment a move switches over). Pass the
 * whole manifest's fleet: a cluster must admit every tenant on it, whichever shard declares it.
 */
export function renderFleetHba(cfg: StackConfig, fleet: FleetModel): Record<string, string> {
  return Object.fromEntries(
    Object.keys(cfg.clusters).map((tier) => [
      tier,
      renderHba(
        tier,
        cfg.clusters[tier].username,
        cfg.hba,
        tenantsOnTier(fleet, tier),
        cfg.clusters[tier].pooler?.sourceCidrs,
      ),
    ]),
  );
}
