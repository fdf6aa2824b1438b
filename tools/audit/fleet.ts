import type { StackConfig } from "../../infra/config";
import { FleetModel, tenantsOnTier } from "../../infra/model";
import { auditCluster } from "./cluster";
import type { Finding } from "./invariants";
import type { ClusterSnapshot } from "./snapshot";
import { auditTenant, forgetIndex } from "./tenant";

/**
 * The live isolation audit, as a pure function: a read-only snapshot of each cluster's catalog
 * (tools/audit/catalog.ts takes it) compared with the isolation model (infra/model.ts). Every
 * expectation comes from the model; nothing here restates who may do what.
 */

/**
 * Compares every cluster's snapshot with the fleet model. Findings are sorted by tier, tenant,
 * invariant; a violation makes the audit fail, a notice is reported only.
 */
export function auditFleet(
  cfg: StackConfig,
  fleet: FleetModel,
  snapshots: readonly ClusterSnapshot[],
): Finding[] {
  const findings: Finding[] = [];
  for (const snap of snapshots) {
    // Snapshots may have changed since an earlier audit of them (tests tamper with them).
    forgetIndex(snap);
    const expected = tenantsOnTier(fleet, snap.tier);
    const provisioner = cfg.clusters[snap.tier].username;
    for (const model of expected) findings.push(...auditTenant(model, snap, provisioner));
    findings.push(...auditCluster(cfg, fleet, snap, expected));
  }
  return findings.sort(
    (a, b) =>
      a.tier.localeCompare(b.tier) ||
      (a.tenant ?? "").localeCompare(b.tenant ?? "") ||
      a.invariant.localeCompare(b.invariant) ||
      a.message.localeCompare(b.message),
  );
}
