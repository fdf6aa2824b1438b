import type { CheckResult, Outcome, RunReport, TenantResult } from "./fleet";

/** How `migrate` prints: a table for people, markdown for a CI job summary, JSON for machines. */
export type MigrateFormat = "text" | "json" | "markdown";
export const MIGRATE_FORMATS: readonly MigrateFormat[] = ["text", "json", "markdown"];

const v = (n: number | undefined) => (n === undefined || n === 0 ? "-" : String(n));

/** One tenant's outcome as table cells: from, to, outcome, detail. */
function cells(o: Outcome): [string, string, string, string] {
  switch (o.status) {
    case "skipped":
      return ["-", "-", "skipped", o.reason];
    case "current":
      return [
        v(o.version),
        v(o.version),
        "current",
        o.via === "ledger"
          ? "per the ledger"
          : o.via === "baseline"
            ? "history recorded (0001)"
            : "per its history",
      ];
    case "pending":
      return [v(o.version), v(o.version + o.pending.length), "pending", o.pending.join(", ")];
    case "migrated":
      return [v(o.from), v(o.version), "migrated", `${o.applied.join(", ")} in ${o.ms} ms`];
    case "failed":
      return [
        "-",
        v(o.version),
        "failed",
        `${o.migration !== undefined ? `${o.migration}: ` : ""}${o.message}${o.code !== undefined ? ` (SQLSTATE ${o.code})` : ""}`,
      ];
    case "refused":
      return [v(o.version), v(o.version), "refused", o.problems.join("; ")];
    case "not-run":
      return ["-", "-", "not run", o.reason];
  }
}

/** The plain line a tenant's result is reported as while the run goes on. */
export function resultLine(r: TenantResult): string {
  const [from, to, status, detail] = cells(r.outcome);
  const versions = from === to ? `v${to}` : `v${from} -> v${to}`;
  return `${r.tenant.id} (${r.tenant.tier}, ${r.wave === "-" ? "no wave" : r.wave === "canary" ? "canary" : `wave ${r.wave}`}): ${status} ${versions.replace(/v-/g, "-")}${detail !== "" ? `: ${detail}` : ""}`;
}

export function counts(
  results: readonly { outcome: { status: string } }[],
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) out[r.outcome.status] = (out[r.outcome.status] ?? 0) + 1;
  return out;
}

const countLine = (c: Record<string, number>) =>
  Object.entries(c)
    .map(([k, n]) => `${n} ${k}`)
    .join(", ") || "no tenants";

function table(header: string[], rows: string[][], markdown: boolean): string[] {
  if (markdown) {
    const esc = (s: string) =>
      s
        .replace(/\\/g, "\\\\")
        .replace(/\|/g, "\\|")
        .replace(/</g, "&lt;")
        .replace(/[\r\n]+/g, " ");
    return [
      `| ${header.join(" | ")} |`,
      `|${header.map(() => "---").join("|")}|`,
      ...rows.map((r) => `| ${r.map(esc).join(" | ")} |`),
    ];
  }
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (i < r.length - 1 ? r[i].length : 0))),
  );
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

export interface RunSummary {
  stack: string;
  template: string;
  version: number;
  dryRun: boolean;
  report: RunReport;
}

export function renderRun(s: RunSummary, format: MigrateFormat): string {
  const c = counts(s.report.results);
  const head = `${s.dryRun ? "migrate plan" : "migrate"} of stack ${s.stack} to ${s.template} (version ${s.version}): ${s.report.results.length} tenant(s)`;
  const built = Object.entries(s.report.templates).flatMap(([tier, list]) =>
    list
      .filter((b) => b.built)
      .map((b) => `template ${b.template} built on cluster ${tier} in ${b.ms} ms`),
  );
  if (format === "json") {
    return JSON.stringify(
      {
        stack: s.stack,
        template: s.template,
        version: s.version,
        dryRun: s.dryRun,
        stopped: s.report.stopped,
        ms: s.report.ms,
        counts: c,
        templates: s.report.templates,
        tenants: s.report.results.map((r) => ({
          id: r.tenant.id,
          tier: r.tenant.tier,
          database: r.tenant.database,
          wave: r.wave,
          ...r.outcome,
        })),
      },
      null,
      2,
    );
  }
  const markdown = format === "markdown";
  const rows = s.report.results.map((r) => [
    r.tenant.id,
    r.tenant.tier,
    r.wave === "-" ? "-" : String(r.wave),
    ...cells(r.outcome),
  ]);
  const lines = [markdown ? `## ${head}` : head, ...(markdown ? [""] : [])];
  lines.push(...built, ...(built.length > 0 && markdown ? [""] : []));
  lines.push(
    ...table(["tenant", "cluster", "wave", "from", "to", "outcome", "detail"], rows, markdown),
  );
  const tail = `${countLine(c)} in ${(s.report.ms / 1000).toFixed(1)} s${s.report.stopped ? "; stopped at the first failure (later tenants untouched: run again to resume, or --continue-on-error)" : ""}`;
  lines.push("", markdown ? `**${tail}**` : tail);
  return lines.join("\n");
}

export function renderCheck(
  stack: string,
  template: string,
  version: number,
  results: readonly CheckResult[],
  ms: number,
  format: MigrateFormat,
): string {
  const c = counts(results);
  const behind = results.filter((r) => r.pending.length > 0).length;
  const head = `drift check of stack ${stack} against ${template} (version ${version}): ${results.length} tenant(s)`;
  if (format === "json") {
    return JSON.stringify(
      {
        stack,
        template,
        version,
        ms,
        counts: c,
        behind,
        tenants: results.map((r) => ({
          id: r.tenant.id,
          tier: r.tenant.tier,
          database: r.tenant.database,
          pending: r.pending,
          ...r.outcome,
        })),
      },
      null,
      2,
    );
  }
  const markdown = format === "markdown";
  const rows = results.map((r) => {
    const o = r.outcome;
    const at = "version" in o && o.version !== undefined ? String(o.version) : "-";
    const detail =
      o.status === "drifted"
        ? `${o.differences.length} difference(s)`
        : o.status === "refused"
          ? o.problems.join("; ")
          : o.status === "failed"
            ? o.message
            : o.status === "skipped"
              ? o.reason
              : "";
    return [r.tenant.id, r.tenant.tier, at, o.status, r.pending.join(", ") || "-", detail];
  });
  const lines = [markdown ? `## ${head}` : head, ...(markdown ? [""] : [])];
  lines.push(...table(["tenant", "cluster", "at", "schema", "pending", "detail"], rows, markdown));
  const drifted = results.filter((r) => r.outcome.status === "drifted");
  if (drifted.length > 0) {
    lines.push("");
    for (const r of drifted) {
      if (r.outcome.status !== "drifted") continue;
      for (const d of r.outcome.differences)
        lines.push(`${markdown ? "- " : ""}${r.tenant.id}: ${d}`);
    }
  }
  const tail = `${countLine(c)}; ${behind} behind the stack's version, in ${(ms / 1000).toFixed(1)} s`;
  lines.push("", markdown ? `**${tail}**` : tail);
  return lines.join("\n");
}
