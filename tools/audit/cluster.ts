import { EMPTY_TEMPLATE } from "../../infra/containment";
import { parseTemplate, templateName } from "../../infra/templates";
import type { StackConfig } from "../../infra/config";
import { FleetModel, TenantModel } from "../../infra/model";
import { RESTORE_INFIX } from "../../infra/naming";
import { Finding, Invariant, INVARIANTS, Severity } from "./invariants";
import type { ClusterSnapshot, DatabaseRow } from "./snapshot";
import { CLUSTER_FLAGS } from "./tenant";

/**
 * The invariants of a whole cluster, as pure comparisons of its snapshot (tools/audit/snapshot.ts)
 * with the stack and the fleet model: cluster privileges, the maintenance databases, the
 * template and its versions, what no tenant of the manifest explains, and pg_hba.
 */

const MAINTENANCE_DATABASES = ["postgres", "template1"];
const ALWAYS_PRESENT_DATABASES = ["postgres", "template0", "template1"];

/** Cluster-wide invariants and what no manifest entry explains. */
export function auditCluster(
  cfg: StackConfig,
  fleet: FleetModel,
  snap: ClusterSnapshot,
  expected: readonly TenantModel[],
): Finding[] {
  const out: Finding[] = [];
  const push = (severity: Severity, invariant: Invariant, message: string, tenant?: string) =>
    out.push({
      severity,
      tier: snap.tier,
      invariant,
      message,
      ...(tenant !== undefined ? { tenant } : {}),
    });
  const cluster = cfg.clusters[snap.tier];

  // No role named like a tenant's holds a cluster privilege, known tenant or not.
  const expectedRoles = new Set(expected.flatMap((m) => m.roles.map((r) => r.name)));
  for (const role of snap.roles.filter((r) => r.name.startsWith(cfg.namePrefix))) {
    const held = CLUSTER_FLAGS.filter((p) => role[p]);
    if (held.length > 0 && !expectedRoles.has(role.name)) {
      push(
        "violation",
        INVARIANTS.noTenantSuperuser,
        `role ${role.name} has cluster privileges: ${held.join(", ")}`,
      );
    }
  }

  for (const name of MAINTENANCE_DATABASES) {
    const db = snap.databases.find((d) => d.name === name);
    const held = db?.acl.filter((a) => a.grantee === "PUBLIC" && a.privilege === "CONNECT") ?? [];
    if (held.length > 0)
      push(
        "violation",
        INVARIANTS.maintenancePublicConnect,
        `PUBLIC may connect to database ${name}`,
      );
  }

  const template = snap.databases.find((d) => d.name === cfg.template);
  if (template === undefined) {
    push(
      "violation",
      INVARIANTS.templateClosed,
      `template database ${cfg.template} does not exist`,
    );
  } else {
    if (template.allowConnections)
      push("violation", INVARIANTS.templateClosed, `template ${cfg.template} accepts connections`);
    if (!template.isTemplate)
      push(
        "violation",
        INVARIANTS.templateClosed,
        `database ${cfg.template} is not marked IS_TEMPLATE`,
      );
  }

  // Other versions of the stack's template: kept until no stack names them, never open.
  const versions = otherTemplateVersions(cfg.template, snap.databases);
  for (const db of versions) {
    const v = parseTemplate(db.name)!.version;
    const current = parseTemplate(cfg.template)!.version;
    push(
      "notice",
      INVARIANTS.templateVersion,
      v < current
        ? `template ${db.name} is superseded by ${cfg.template}: drop it once no stack names it`
        : `template ${db.name} is newer than this stack's ${cfg.template} (another stack names it, or migrate built it ahead)`,
    );
    if (db.allowConnections || !db.isTemplate)
      push(
        "violation",
        INVARIANTS.templateClosed,
        `template ${db.name} ${db.allowConnections ? "accepts connections" : "is not marked IS_TEMPLATE"}`,
      );
  }

  // Orphans. A database of a tenant placed on another tier, closed to connections, is the
  // retained source of a completed move; a restore database awaits a swap: both are notices.
  const expectedIds = new Set(expected.map((m) => m.id));
  const elsewhere = new Map(
    fleet.tenants.filter((m) => !expectedIds.has(m.id)).map((m) => [m.names.database, m]),
  );
  const known = new Set([
    ...ALWAYS_PRESENT_DATABASES,
    cfg.template,
    ...versions.map((d) => d.name),
    EMPTY_TEMPLATE,
    cluster.database,
    ...expected.map((m) => m.database.name),
  ]);
  const byDatabase = new Map(expected.map((m) => [m.database.name, m]));
  for (const db of snap.databases) {
    if (known.has(db.name)) continue;
    const moved = elsewhere.get(db.name);
    const restoreOf = restoreBase(db.name);
    const restoreTenant = restoreOf === undefined ? undefined : byDatabase.get(restoreOf);
    if (moved !== undefined && !db.allowConnections) {
      push(
        "notice",
        INVARIANTS.retained,
        `database ${db.name} is retained here (connections disallowed) after the tenant moved to ${moved.tier}; remove it when no longer needed`,
        moved.id,
      );
    } else if (restoreTenant !== undefined) {
      push(
        "notice",
        INVARIANTS.retained,
        `restore database ${db.name} awaits a swap or removal`,
        restoreTenant.id,
      );
    } else {
      push(
        "violation",
        INVARIANTS.orphanDatabase,
        `database ${db.name} is not explained by any tenant of the manifest`,
      );
    }
  }

  const retainedTenants = new Set(
    snap.databases
      .filter((d) => elsewhere.has(d.name) && !d.allowConnections)
      .map((d) => elsewhere.get(d.name)!.id),
  );
  const retainedRoles = new Map<string, string>();
  for (const m of fleet.tenants.filter((t) => retainedTenants.has(t.id))) {
    for (const r of m.roles) retainedRoles.set(r.name, m.id);
  }
  for (const role of snap.roles.filter(
    (r) => r.name.startsWith(cfg.namePrefix) && !expectedRoles.has(r.name),
  )) {
    const owner = retainedRoles.get(role.name);
    if (owner !== undefined && !role.login) continue;
    push(
      "violation",
      INVARIANTS.orphanRole,
      `role ${role.name} is not explained by any tenant of the manifest`,
    );
  }

  if (snap.hba === "unreadable") {
    push(
      "notice",
      INVARIANTS.hbaReadable,
      `pg_hba_file_rules is not readable by ${cluster.username}; pg_hba rules not checked (CONNECT privileges carry the isolation alone where pg_hba is not managed)`,
    );
  } else {
    const admins = new Set([cluster.username, ...cfg.hba.adminUsers]);
    for (const rule of snap.hba) {
      if (rule.error !== null) {
        push("violation", INVARIANTS.hba, `pg_hba line ${rule.line} does not parse: ${rule.error}`);
        continue;
      }
      if (rule.method === "reject" || !rule.databases.includes("all")) continue;
      const open = rule.users.filter((u) => !admins.has(u));
      if (open.length > 0) {
        push(
          "violation",
          INVARIANTS.hba,
          `pg_hba line ${rule.line} admits ${open.join(", ")} to all databases`,
        );
      }
    }
  }
  return out;
}

/** The databases that are other versions of the stack's template (`<family>_v<N>`). */
function otherTemplateVersions(template: string, databases: readonly DatabaseRow[]): DatabaseRow[] {
  const own = parseTemplate(template);
  if (own === undefined) return [];
  return databases.filter((d) => {
    const v = parseTemplate(d.name);
    return (
      v !== undefined &&
      v.family === own.family &&
      d.name !== template &&
      d.name === templateName(v.family, v.version)
    );
  });
}

/** `tenant_acme` for `tenant_acme_restore_20261126064500`, else undefined. */
function restoreBase(name: string): string | undefined {
  const m = new RegExp(`^(.+)${RESTORE_INFIX}\\d{14}$`).exec(name);
  return m?.[1];
}
