import { Tenant } from "../../infra/manifest";
import { clusterProviderName, ROLE_KINDS, roleLogicalName } from "../../infra/naming";
import { tenantOf, TYPES } from "../../policy/tenancy";
import { Registration } from "./record";

// pg-tenants check (index.ts): Per tenant, what will exist: from the registrations, through the naming helpers.

export interface PlacementSummary {
  cluster: string;
  host: string;
  port: number;
  database: string;
  roles: string[];
}

export interface TenantSummary {
  id: string;
  displayName: string;
  state: string;
  /** The tier a declared move goes to. */
  movingTo?: string;
  placements: PlacementSummary[];
  /** `alias/...` of the tenant's KMS key, or `local` (data key kept as a secret stack output). */
  key: string;
}

/** Per tenant, from what the program registered: databases, roles and keys, by cluster. */
export function summarize(
  registrations: readonly Registration[],
  tenants: readonly Tenant[],
): TenantSummary[] {
  const byUrn = new Map(registrations.map((r) => [r.urn, r]));
  const mine = new Map<string, Registration[]>();
  for (const r of registrations) {
    const id = tenantOf(r);
    if (id !== undefined) mine.set(id, [...(mine.get(id) ?? []), r]);
  }
  const files = new Map(tenants.map((t) => [t.id, t]));
  return [...mine.keys()].sort().map((id) => {
    const own = mine.get(id) ?? [];
    const placements = own
      .filter((r) => r.type === TYPES.database)
      .map((db): PlacementSummary => {
        const placement = db.name.slice(0, db.name.lastIndexOf("-"));
        const provider = db.provider === undefined ? undefined : byUrn.get(db.provider);
        const tier = placement.slice(placement.indexOf("@") + 1);
        return {
          cluster:
            provider?.name === clusterProviderName(tier)
              ? tier
              : (provider?.name ?? "default provider"),
          host: String(provider?.inputs.host ?? ""),
          port: Number(provider?.inputs.port ?? 0),
          database: String(db.inputs.name ?? db.name),
          // In the model's order (group, owner, rw, ro), whatever order they registered in.
          roles: ROLE_KINDS.flatMap((kind) =>
            own
              .filter((r) => r.type === TYPES.role && r.name === roleLogicalName(placement, kind))
              .map((r) => String(r.inputs.name)),
          ),
        };
      });
    const alias = own.find((r) => r.type === TYPES.kmsAlias);
    const file = files.get(id);
    return {
      id,
      displayName: file?.displayName ?? id,
      state: file?.state ?? "unknown",
      ...(file?.move !== undefined ? { movingTo: file.move.to } : {}),
      placements,
      key: alias !== undefined ? String(alias.inputs.name) : "local",
    };
  });
}
