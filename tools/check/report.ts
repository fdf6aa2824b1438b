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
  /** The pack's policies, and those a --policy-config turned off (`disabled`): never "passed". */
  policies: { pack: string; count: number; disabled?: string[] };
  violations: Violation[];
  changes?: { base: string } & ManifestDiff;
  /** The template's migrations: the stack's version and what migrate applies after the deploy. */
  migrations?: MigrationPlan;
  /** Seconds the check took. */
  seconds: number;
}

/**
 * Text from the manifest (a displayName, a changed value) on a terminal: control characters,
 * escape sequences included, are shown as `\xNN` / `\u{...}`, so no input can forge a line,
 * move the cursor or recolour the report.
 */
export function terminalText(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    const code = c.codePointAt(0)!;
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`;
  });
}

/**
 * Text in a Markdown table cell of a pull request or job summary: HTML and Markdown syntax
 * (links, images, emphasis, code, headings) are escaped, pipes and line breaks cannot end the
 * cell or the row, control characters are shown as escapes.
 */
export function markdownText(s: string): string {
  return terminalText(s.replace(/[\r\n]+/g, " "))
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/([\\`*_[\]()!|~])/g, "\\$1");
}

const escapeCell = markdownText;

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
    `${report.policies.count} policies${disabledText(report)}: ${mandatory} mandatory and ${advisory} advisory violation(s)` +
    (report.changes !== undefined
      ? `, ${report.changes.violations.length} refused manifest change(s)`
      : "")
  );
}

/** ` (2 disabled: a, b)` when a policy config turned policies off. */
function disabledText(report: CheckReport): string {
  const off = report.policies.disabled ?? [];
  return off.length === 0 ? "" : ` (${off.length} disabled: ${off.join(", ")})`;
}

/** "passed", "passed with 2 of 13 policies disabled", or "FAILED". */
function verdict(report: CheckReport, failed: string): string {
  if (!report.ok) return failed;
  const off = report.policies.disabled ?? [];
  return off.length === 0
    ? "passed"
    : `passed with ${off.length} of ${report.policies.count} policies disabled`;
}

export function renderText(report: CheckReport): string {
  const lines = [
    `pg-tenants check of stack ${report.stack}: ${verdict(report, "FAILED")}`,
    headline(report),
    "",
  ];
  lines.push("Tenants:");
  for (const t of report.tenants) {
    lines.push(`  ${t.id} (${terminalText(t.displayName)}), ${stateText(t)}, key ${t.key}`);
    for (const p of t.placements) {
      lines.push(`    ${placementText(p)}: database ${p.database}; roles ${p.roles.join(", ")}`);
    }
  }
  if (report.changes !== undefined) {
    lines.push("", `Changes against ${report.changes.base}:`);
    const changes = changeLines(report.changes);
    if (changes.length === 0) lines.push("  none");
    for (const [kind, id, details] of changes)
      lines.push(`  ${kind} ${id}: ${terminalText(details)}`);
    for (const v of report.changes.violations)
      lines.push(`  REFUSED [${v.rule}] ${terminalText(v.message)}`);
  }
  if (report.migrations !== undefined)
    lines.push("", "Migrations:", ...planLines(report.migrations));
  lines.push("", "Violations:");
  if (report.violations.length === 0) lines.push("  none");
  for (const v of report.violations) {
    const where = v.resource !== undefined ? ` ${v.resource.type} ${v.resource.name}:` : "";
    lines.push(`  ${v.level} [${v.policy}]${where} ${terminalText(v.message)}`);
  }
  return lines.join("\n");
}

export function renderMarkdown(report: CheckReport): string {
  const lines = [
    `### pg-tenants check: stack \`${report.stack}\` ${verdict(report, "failed")}`,
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
    lines.push(
      (report.policies.disabled ?? []).length === 0
        ? `None: every policy of the \`${report.policies.pack}\` pack passed.`
        : `None from the policies that ran; disabled by the policy config, so not checked: ${(report.policies.disabled ?? []).map((p) => `\`${p}\``).join(", ")}.`,
    );
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
