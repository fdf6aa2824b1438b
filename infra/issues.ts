import { z } from "zod";

/** One problem found in an input file, located precisely enough to fix it without guessing. */
export interface InputIssue {
  /** The file, relative to the project root (e.g. `tenants/acme.yaml`). */
  file: string;
  /** The field, dotted (e.g. `limits.connectionLimit`), or empty for the whole file. */
  field: string;
  message: string;
}

/** Thrown when an input file is invalid; carries every issue found, not just the first. */
export class InputError extends Error {
  constructor(
    public readonly summary: string,
    public readonly issues: readonly InputIssue[],
  ) {
    super(`${summary}\n${issues.map((i) => `  - ${formatIssue(i)}`).join("\n")}`);
    this.name = "InputError";
  }
}

export function formatIssue(issue: InputIssue): string {
  return issue.field
    ? `${issue.file}: ${issue.field}: ${issue.message}`
    : `${issue.file}: ${issue.message}`;
}

/** Turns zod's issues into located ones; unknown keys become one issue per key. */
export function zodIssues(
  file: string,
  error: z.ZodError,
  allowedKeys: (path: PropertyKey[]) => readonly string[],
  fieldPrefix = "",
): InputIssue[] {
  const out: InputIssue[] = [];
  for (const issue of error.issues) {
    const base = [fieldPrefix, ...issue.path.map(String)].filter((p) => p !== "").join(".");
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        out.push({
          file,
          field: base ? `${base}.${key}` : key,
          message: `unknown field; allowed: ${allowedKeys(issue.path).join(", ")}`,
        });
      }
    } else {
      out.push({ file, field: base, message: issue.message });
    }
  }
  return out;
}
