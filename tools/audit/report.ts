import type { Finding } from "./invariants";

/** The audit's report: its findings counted, rendered for people or machines. */

export interface AuditReport {
  stack: string;
  tenants: number;
  clusters: string[];
  findings: Finding[];
  violations: number;
  notices: number;
  /** Wall time of the audit in milliseconds. */
  elapsedMs: number;
}

export function summarize(
  stack: string,
  tenants: number,
  clusters: string[],
  findings: Finding[],
  elapsedMs: number,
): AuditReport {
  return {
    stack,
    tenants,
    clusters,
    findings,
    violations: findings.filter((f) => f.severity === "violation").length,
    notices: findings.filter((f) => f.severity === "notice").length,
    elapsedMs,
  };
}

export type AuditFormat = "text" | "json" | "markdown";
export const AUDIT_FORMATS: readonly AuditFormat[] = ["text", "json", "markdown"];

/** Renders a report for people (text, markdown) or machines (json). */
export function renderReport(report: AuditReport, format: AuditFormat): string {
  const head = `audit of stack ${report.stack}: ${report.tenants} tenant(s) on ${report.clusters.length} cluster(s) (${report.clusters.join(", ")})`;
  const tail = `${report.violations} violation(s), ${report.notices} notice(s)`;
  switch (format) {
    case "json":
      return JSON.stringify(report, null, 2);
    case "markdown": {
      const lines = [`## ${head}`, ""];
      if (report.findings.length === 0) {
        lines.push("Every invariant holds.");
      } else {
        lines.push(
          "| severity | cluster | tenant | invariant | finding |",
          "|---|---|---|---|---|",
        );
        for (const f of report.findings) {
          lines.push(
            `| ${f.severity} | ${f.tier} | ${f.tenant ?? ""} | ${f.invariant} | ${f.message.replace(/\|/g, "\\|")} |`,
          );
        }
      }
      lines.push("", `**${tail}**`);
      return lines.join("\n");
    }
    case "text": {
      const lines = [head];
      for (const f of report.findings) {
        lines.push(
          `${f.severity.toUpperCase().padEnd(9)} ${f.tier} ${f.tenant ?? "(cluster)"} ${f.invariant}: ${f.message}`,
        );
      }
      lines.push(report.violations === 0 ? `OK: ${tail}` : `FAILED: ${tail}`);
      return lines.join("\n");
    }
  }
}
