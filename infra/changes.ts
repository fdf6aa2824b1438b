import * as path from "path";
import { parseYaml, SourceFile, TenantFileSchema } from "./manifest";

/**
 * What a change of the tenants manifest does, tenant by tenant, and which of those changes the
 * gate refuses. Pure: the offline check feeds it the base branch's files and the working tree's.
 * Rules are data (CHANGE_RULES): each looks at the whole diff and returns its violations.
 */

/** One tenant file as a diff sees it: read leniently, so that an old or broken file still compares. */
export interface ManifestEntry {
  id: string;
  file: string;
  /** The file's fields with the schema's defaults applied where the file is valid. */
  doc: Record<string, unknown>;
}

export interface FieldChange {
  /** Dotted path, e.g. `tier` or `limits.connectionLimit`. */
  field: string;
  from: unknown;
  to: unknown;
}

export interface TenantChange {
  id: string;
  file: string;
  fields: FieldChange[];
}

export interface ChangeViolation {
  /** The rule that refused the change (a kebab-case name, like a policy's). */
  rule: string;
  tenant: string;
  file: string;
  message: string;
}

export interface ManifestDiff {
  added: ManifestEntry[];
  changed: TenantChange[];
  removed: ManifestEntry[];
  violations: ChangeViolation[];
}

/** A rule over a whole diff; `base` and `head` index both sides by tenant id. */
export type ChangeRule = (
  diff: Omit<ManifestDiff, "violations">,
  base: ReadonlyMap<string, ManifestEntry>,
  head: ReadonlyMap<string, ManifestEntry>,
) => ChangeViolation[];

/** Reads tenant files for a diff: the id from the file (or its name), defaults applied if valid. */
export function readManifestEntries(files: readonly SourceFile[]): ManifestEntry[] {
  return files.map(({ file, text }) => {
    const fallbackId = path.basename(file).replace(/\.ya?ml$/, "");
    const yaml = parseYaml(text);
    const raw: unknown = "value" in yaml ? yaml.value : {};
    const fields =
      raw !== null && typeof raw === "object" && !Array.isArray(raw)
        ? (raw as Record<string, unknown>)
        : {};
    const parsed = TenantFileSchema.safeParse(fields);
    const normalized = parsed.success ? (parsed.data as Record<string, unknown>) : fields;
    const id = typeof normalized.id === "string" ? normalized.id : fallbackId;
    return { id, file, doc: normalized };
  });
}

/** Compares two versions of the manifest: tenants added, changed (field by field) and removed. */
export function diffManifests(
  base: readonly ManifestEntry[],
  head: readonly ManifestEntry[],
): ManifestDiff {
  const baseById = new Map(base.map((e) => [e.id, e]));
  const headById = new Map(head.map((e) => [e.id, e]));
  const byId = (a: ManifestEntry, b: ManifestEntry) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

  const added = head.filter((e) => !baseById.has(e.id)).sort(byId);
  const removed = base.filter((e) => !headById.has(e.id)).sort(byId);
  const changed: TenantChange[] = [];
  for (const after of [...head].sort(byId)) {
    const before = baseById.get(after.id);
    if (before === undefined) continue;
    const fields = fieldChanges(flatten(before.doc), flatten(after.doc));
    if (fields.length > 0) changed.push({ id: after.id, file: after.file, fields });
  }
  const diff = { added, changed, removed };
  return { ...diff, violations: CHANGE_RULES.flatMap((rule) => rule(diff, baseById, headById)) };
}

/** The state a tenant must be in, on the base branch, before its file may be removed. */
export const REMOVABLE_STATE = "offboarded";

/**
 * Removing a tenant file is not offboarding: the program would plan to delete the tenant's
 * resources (the protected database refuses, the rest would go). A file may leave the manifest
 * only once the base branch has it offboarded.
 */
export const removedOnlyWhenOffboarded: ChangeRule = (diff) =>
  diff.removed
    .filter((e) => e.doc.state !== REMOVABLE_STATE)
    .map((e) => ({
      rule: "removed-only-when-offboarded",
      tenant: e.id,
      file: e.file,
      message: `${e.file} was removed, but tenant ${e.id} is not offboarded (state: ${String(e.doc.state ?? "active")}); removing a file is not offboarding: set state: offboarded, merge and deploy that first, then remove the file.`,
    }));

/**
 * Editing `tier` alone does not move data: the placement's logical name holds the tier, so the
 * program would provision an empty database on the new cluster, point the credentials at it and
 * plan to delete the protected source database (the engine refuses). A tier changes only as the
 * last step of a declared move: the base declares `move.to` equal to the new tier.
 */
export const tierChangedOnlyByMove: ChangeRule = (diff, base) =>
  diff.changed.flatMap((change) => {
    const tier = change.fields.find((f) => f.field === "tier");
    if (tier === undefined) return [];
    const declared = (base.get(change.id)?.doc.move as { to?: unknown } | undefined)?.to;
    if (declared === tier.to) return [];
    const from = String(tier.from);
    const to = String(tier.to);
    return [
      {
        rule: "tier-changed-only-by-move",
        tenant: change.id,
        file: change.file,
        message: `${change.file} changes tier from ${from} to ${to} without a declared move; editing tier alone would leave tenant ${change.id}'s data on ${from} and point it at an empty database on ${to}. To move it: set "move: { to: ${to} }" (keep tier: ${from}), merge and deploy (pulumi up provisions the target), then run npm run move -- ${change.id}, which copies and verifies the data and sets tier: ${to} itself.`,
      },
    ];
  });

/**
 * The retention of an offboarded tenant counts from `offboardedAt`: dating it earlier shortens
 * the retention (the purge becomes allowed sooner) as surely as lowering `retentionDays`, so an
 * edit may move it later, never earlier.
 */
export const retentionNotShortened: ChangeRule = (diff) =>
  diff.changed.flatMap((change) => {
    const f = change.fields.find((x) => x.field === "offboardedAt");
    if (f === undefined || typeof f.from !== "string" || typeof f.to !== "string") return [];
    if (f.to >= f.from) return [];
    return [
      {
        rule: "retention-not-shortened",
        tenant: change.id,
        file: change.file,
        message: `${change.file} moves offboardedAt from ${f.from} to ${f.to}: that shortens tenant ${change.id}'s retention (a purge would be allowed earlier); the day of the offboarding is never moved earlier: keep offboardedAt: ${f.from}.`,
      },
    ];
  });

/** Every rule the gate applies to a manifest change, in reporting order. */
export const CHANGE_RULES: ChangeRule[] = [
  removedOnlyWhenOffboarded,
  tierChangedOnlyByMove,
  retentionNotShortened,
];

/** Leaf values by dotted path; arrays count as one value. */
function flatten(doc: Record<string, unknown>, prefix = ""): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [key, value] of Object.entries(doc)) {
    const field = prefix === "" ? key : `${prefix}.${key}`;
    if (
      value !== null &&
      typeof value === "object" &&
      !Array.isArray(value) &&
      !(value instanceof Date)
    ) {
      for (const [k, v] of flatten(value as Record<string, unknown>, field)) out.set(k, v);
    } else if (value !== undefined) {
      out.set(field, value);
    }
  }
  return out;
}

function fieldChanges(before: Map<string, unknown>, after: Map<string, unknown>): FieldChange[] {
  const fields = [...new Set([...before.keys(), ...after.keys()])].sort();
  return fields
    .filter((f) => JSON.stringify(before.get(f)) !== JSON.stringify(after.get(f)))
    .map((f) => ({ field: f, from: before.get(f), to: after.get(f) }));
}
