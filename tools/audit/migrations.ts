import * as path from "path";
import type { CommandIo, StackContext } from "../lib/cli";
import { clusterTarget } from "../lib/pg";
import { checkFleet, TenantTarget, tenantTarget } from "../lib/migrations/fleet";
import { loadMigrations, MIGRATIONS_DIR, stackTemplate } from "../lib/migrations/files";
import { DEFAULT_LIMITS } from "../lib/migrations/runner";
import { buildFleetModel } from "../../infra/model";
import { tenantsOfShard } from "../../infra/shards";
import { Finding, INVARIANTS } from "./invariants";

/**
 * The audit's migration findings: per tenant, its history (owned by the provisioning role, no
 * grants, applied files unchanged: a violation otherwise), its schema against its template's at
 * its own version (each difference a violation), and a notice when it is behind the stack's
 * template version. Offboarded tenants and declared moves are left out, as migrate leaves them.
 */
export async function migrationFindings(
  ctx: StackContext,
  io: CommandIo,
  poolSize: number,
): Promise<Finding[]> {
  const migrations = loadMigrations(path.join(ctx.root, MIGRATIONS_DIR));
  const { family, version } = stackTemplate(ctx.cfg.template, ctx.cfg.stack, migrations);
  const fleet = buildFleetModel(tenantsOfShard(ctx.cfg, ctx.tenants), ctx.cfg);
  const tenants: TenantTarget[] = fleet.tenants.map((m) => ({
    ...tenantTarget(m),
    ...(!m.database.open || m.move !== undefined ? { skip: "not migrated" } : {}),
  }));
  const tiers = Object.keys(ctx.cfg.clusters);
  const { results } = await checkFleet(
    Object.fromEntries(tiers.map((tier) => [tier, clusterTarget(ctx.cfg, tier, ctx.root, io.env)])),
    tenants,
    {
      migrations,
      family,
      version,
      provisioner: Object.fromEntries(tiers.map((tier) => [tier, ctx.cfg.clusters[tier].username])),
      limits: DEFAULT_LIMITS,
      parallel: poolSize,
      readOnly: true,
    },
  );
  const out: Finding[] = [];
  const unreferenced = new Set<string>();
  for (const r of results) {
    const base = { tier: r.tenant.tier, tenant: r.tenant.id };
    const o = r.outcome;
    if (o.status === "drifted") {
      for (const d of o.differences) {
        out.push({
          ...base,
          severity: "violation",
          invariant: INVARIANTS.schemaDrift,
          message: `database ${r.tenant.database} differs from template version ${o.version}: ${d}`,
        });
      }
    } else if (o.status === "refused") {
      for (const p of o.problems) {
        out.push({
          ...base,
          severity: "violation",
          invariant: INVARIANTS.migrationHistory,
          message: `database ${r.tenant.database}: ${p}`,
        });
      }
    }
    if (o.status === "no-reference") {
      const key = `${r.tenant.tier}/${o.version}`;
      if (!unreferenced.has(key)) {
        unreferenced.add(key);
        out.push({
          tier: r.tenant.tier,
          severity: "notice",
          invariant: INVARIANTS.schemaDrift,
          message: `no snapshot of template version ${o.version} is recorded on this cluster yet: schema drift of its tenants at that version not checked (migrate --stack ${ctx.cfg.stack} records one)`,
        });
      }
    }
    if (r.pending.length > 0) {
      out.push({
        ...base,
        severity: "notice",
        invariant: INVARIANTS.migrationPending,
        message: `database ${r.tenant.database} is at version ${"version" in o ? String(o.version) : "?"}, the stack's template ${ctx.cfg.template}: ${r.pending.join(", ")} pending (migrate --stack ${ctx.cfg.stack})`,
      });
    }
  }
  return out;
}
