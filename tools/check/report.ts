import { ManifestDiff } from "../../infra/changes";
import { MigrationPlan, planLines, planMarkdown } from "../lib/migrations/pending";
import { Violation } from "./policies";
import { PlacementSummary, TenantSummary } from "./summary";

// pg-tenants check (index.ts): The check's report and its text and markdown renderers.

export interface CheckReport {
  stack: string;
  ok: boolean;
  /** Tenants in the manifest, and those this stack declares (a shard may declare fewer). */
  manifestTenants: number;
  tenants: TenantSummary[];
  clusters: string[];
  resources: number;
  policies: { pack: string; count: number };
  violations: Violation[];
  changes?: { base: string } & ManifestDiff;
  /** The template's migrations: the stack's version and what migrate applies after the deploy. */
  migrations?: MigrationPlan;
  /** Seconds the check took. */
  seconds: number;
}

const escapeCell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

function describeValue(v: unknown): string {
  return v === undefined ? "(none)" : typeof v === "string" ? v : JSON.stringify(v);
}

function changeLines(
  changes: NonNullable<CheckReport["changes"]>,
): [kind: string, tenant: string, details: string][] {
  return [
    ...changes.added.map((e): [string, string, string] => ["added", e.id, e.file]),
    ...changes.changed.map((c): [string, string, string] => [
      "changed",
      c.id,
      c.fields
        .map((f) => `${f.field}: ${describeValue(f.from)} → ${describeValue(f.to)}`)
        .join("; "),
    ]),
    ...changes.removed.map((e): [string, string, string] => ["removed", e.id, e.file]),
  ];
}

function placementText(p: PlacementSummary): string {
  return `${p.cluster} (${p.host}:${p.port})`;
}

function stateText(t: TenantSummary): string {
  return t.movingTo !== undefined ? `${t.state}, moving to ${t.movingTo}` : t.state;
}

function headline(report: CheckReport): string {
  const mandatory = report.violations.filter((v) => v.level === "mandatory").length;
  const advisory = report.violations.length - mandatory;
  const shard =
    report.tenants.length === report.manifestTenants
      ? ""
      : ` (of ${report.manifestTenants} in the manifest)`;
  return (
    `${report.tenants.length} tenant(s)${shard} on ${report.clusters.length} cluster(s), ${report.resources} resources, ` +
    `${report.policies.count} policies: ${mandatory} mandatory and ${advisory} advisory violation(s)` +
    (report.changes !== undefined
      ? `, ${report.changes.violations.length} refused manifest change(s)`
      : "")
  );
}

export function renderText(report: CheckReport): string {
  const lines = [
    `pg-tenants check of stack ${report.stack}: ${report.ok ? "passed" : "FAILED"}`,
    headline(report),
    "",
  ];
  lines.push("Tenants:");
  for (const t of report.tenants) {
    lines.push(`  ${t.id} (${t.displayName}), ${stateText(t)}, key ${t.key}`);
    for (const p of t.placements) {
      lines.push(`    ${placementText(p)}: database ${p.database}; roles ${p.roles.join(", ")}`);
    }
  }
  if (report.changes !== undefined) {
    lines.push("", `Changes against ${report.changes.base}:`);
    const changes = changeLines(report.changes);
    if (changes.length === 0) lines.push("  none");
    for (const [kind, id, details] of changes) lines.push(`  ${kind} ${id}: ${details}`);
    for (const v of report.changes.violations) lines.push(`  REFUSED [${v.rule}] ${v.message}`);
  }
  if (report.migrations !== undefined)
    lines.push("", "Migrations:", ...planLines(report.migrations));
  lines.push("", "Violations:");
  if (report.violations.length === 0) lines.push("  none");
  for (const v of report.violations) {
    const where = v.resource !== undefined ? ` ${v.resource.type} ${v.resource.name}:` : "";
    lines.push(`  ${v.level} [${v.policy}]${where} ${v.message}`);
  }
  return lines.join("\n");
}

export function renderMarkdown(report: CheckReport): string {
  const lines = [
    `### pg-tenants check: stack \`${report.stack}\` ${report.ok ? "passed" : "failed"}`,
    "",
    headline(report) + ".",
    "",
    "| Tenant | State | Cluster | Database | Roles | Key |",
    "| --- | --- | --- | --- | --- | --- |",
  ];
  for (const t of report.tenants) {
    for (const p of t.placements.length > 0 ? t.placements : [undefined]) {
      lines.push(
        `| ${escapeCell(`${t.id} (${t.displayName})`)} | ${escapeCell(stateText(t))} | ${p ? escapeCell(placementText(p)) : ""} | ${p ? `\`${p.database}\`` : ""} | ${p ? p.roles.map((r) => `\`${r}\``).join(", ") : ""} | \`${escapeCell(t.key)}\` |`,
      );
    }
  }
  if (report.changes !== undefined) {
    lines.push("", `#### Manifest changes against \`${report.changes.base}\``, "");
    const changes = changeLines(report.changes);
    if (changes.length === 0) {
      lines.push("No tenant added, changed or removed.");
    } else {
      lines.push("| Change | Tenant | Details |", "| --- | --- | --- |");
      for (const [kind, id, details] of changes)
        lines.push(`| ${kind} | ${id} | ${escapeCell(details)} |`);
    }
    if (report.changes.violations.length > 0) {
      lines.push("", "| Refused by | Tenant | Why |", "| --- | --- | --- |");
      for (const v of report.changes.violations)
        lines.push(`| ${v.rule} | ${v.tenant} | ${escapeCell(v.message)} |`);
    }
  }
  if (report.migrations !== undefined) {
    lines.push("", "#### Template migrations", "", ...planMarkdown(report.migrations));
  }
  lines.push("", "#### Policy violations", "");
  if (report.violations.length === 0) {
    lines.push(`None: every policy of the \`${report.policies.pack}\` pack passed.`);
  } else {
    lines.push(
      "| Level | Policy | Tenant | Resource | Message |",
      "| --- | --- | --- | --- | --- |",
    );
    for (const v of report.violations) {
      lines.push(
        `| ${v.level} | ${v.policy} | ${v.tenant ?? ""} | ${v.resource !== undefined ? `\`${escapeCell(v.resource.name)}\`` : ""} | ${escapeCell(v.message)} |`,
      );
    }
  }
  return lines.join("\n");
}
