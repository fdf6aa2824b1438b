import * as fs from "fs";
import * as path from "path";
import { parseDocument } from "yaml";
import { z } from "zod";
import { InputError, InputIssue, zodIssues } from "./issues";
import { LOGIN_CONNECTION_LIMIT_MAX, PG_INT_MAX } from "./limits";
import { maxTenantIdLength, RESERVED_ID_ENDINGS, TENANT_ID_PATTERN, tenantNames } from "./naming";

export const TENANT_STATES = ["active", "offboarded"] as const;
export type TenantState = (typeof TENANT_STATES)[number];

/** A string field whose absence and wrong type get different, precise messages. */
function text(message = "must be a string") {
  return z.string({ error: (issue) => (issue.input === undefined ? "is required" : message) });
}

const LimitsSchema = z.strictObject({
  connectionLimit: z
    .number({ error: "must be a number" })
    .int({ error: "must be a whole number" })
    .min(1, { error: `must be from 1 to ${LOGIN_CONNECTION_LIMIT_MAX}` })
    .max(LOGIN_CONNECTION_LIMIT_MAX, { error: `must be from 1 to ${LOGIN_CONNECTION_LIMIT_MAX}` })
    .optional()
    .describe(
      "Connection limit of each login role (default: the tier's); the cluster's budget must hold both logins' limits of every tenant.",
    ),
  statementTimeoutMs: z
    .number({ error: "must be a number" })
    .int({ error: "must be a whole number of milliseconds" })
    .min(0, { error: `must be from 0 (no timeout) to ${PG_INT_MAX} milliseconds` })
    .max(PG_INT_MAX, { error: `must be from 0 (no timeout) to ${PG_INT_MAX} milliseconds` })
    .optional()
    .describe("Statement timeout of the login roles in milliseconds (default: the tier's)."),
});

/** A calendar day, `2026-11-26` (the YAML core schema reads it as a string, quoted or not). */
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

/** True for a real calendar day in YYYY-MM-DD form (2026-02-30 is not one). */
export function isCalendarDate(value: string): boolean {
  if (!ISO_DATE.test(value)) return false;
  const d = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === value;
}

const MoveSchema = z
  .strictObject({
    to: text().describe("The tier the tenant moves to; `npm run move -- <id>` copies the data."),
  })
  .describe(
    "A declared tier move: the program provisions the target; the move command copies and switches.",
  );

/** The shape of one `tenants/<id>.yaml`; `tenants/tenant.schema.json` is generated from it. */
export const TenantFileSchema = z
  .strictObject({
    id: text()
      .regex(TENANT_ID_PATTERN, {
        error:
          "must match ^[a-z][a-z0-9_]*$ (a lowercase letter, then lowercase letters, digits or _)",
      })
      .describe("Stable tenant id; the file must be named <id>.yaml. Never change it."),
    displayName: text()
      .min(1, { error: "must not be empty" })
      .max(200, { error: "must be at most 200 characters" })
      .describe("Human-readable name, used in tags and reports only."),
    tier: text().describe("A tier of the stack config (pg-tenants:clusters); decides the cluster."),
    state: z
      .enum(TENANT_STATES, { error: `must be one of ${TENANT_STATES.join(", ")}` })
      .default("active")
      .describe("Lifecycle state of the tenant."),
    offboardedAt: z
      .string({ error: "must be a date YYYY-MM-DD" })
      .regex(ISO_DATE, { error: "must be a date YYYY-MM-DD" })
      .refine((v) => !ISO_DATE.test(v) || isCalendarDate(v), {
        error: "is not a calendar day (YYYY-MM-DD)",
      })
      .optional()
      .describe(
        "Day the tenant was offboarded (YYYY-MM-DD); required with state: offboarded. Retention counts from it.",
      ),
    move: MoveSchema.optional(),
    limits: LimitsSchema.optional(),
  })
  .describe("One tenant of pg-tenants: its own database, roles, grants, key and credentials.");

export type TenantFile = z.output<typeof TenantFileSchema>;

/** A validated tenant, with the file it came from. */
export interface Tenant extends TenantFile {
  file: string;
}

/** What manifest validation needs to know about the stack. */
export interface ManifestContext {
  namePrefix: string;
  tiers: readonly string[];
  /** Names no tenant may take: the template, the provisioning roles, the maintenance databases. */
  reservedNames: readonly string[];
}

/** Names that are never a tenant's, whatever the stack says. */
export const ALWAYS_RESERVED = ["postgres", "template0", "template1", "public"];

export interface SourceFile {
  /** Path relative to the project root, e.g. `tenants/acme.yaml`. */
  file: string;
  text: string;
}

/**
 * Validates the tenant files and returns the tenants sorted by id. Pure. Every problem of
 * every file is collected before anything is thrown, so one run shows all there is to fix.
 */
export function parseManifest(files: readonly SourceFile[], ctx: ManifestContext): Tenant[] {
  const issues: InputIssue[] = [];
  const tenants: Tenant[] = [];
  const reserved = new Set([...ALWAYS_RESERVED, ...ctx.reservedNames]);
  const firstFileOfId = new Map<string, string>();

  for (const { file, text } of files) {
    const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        issues.push({ file, field: "", message: `malformed YAML: ${e.message.split("\n")[0]}` });
      }
      continue;
    }
    const parsed = TenantFileSchema.safeParse(doc.toJS() ?? {});
    if (!parsed.success) {
      issues.push(...zodIssues(file, parsed.error, allowedKeysAt));
      continue;
    }
    const tenant = parsed.data;
    const fileIssue = (field: string, message: string) => issues.push({ file, field, message });

    const expected = `${tenant.id}.yaml`;
    if (path.basename(file) !== expected) {
      fileIssue("id", `must match the file name: this file must be named ${expected}`);
    }
    const maxLength = maxTenantIdLength(ctx.namePrefix);
    if (tenant.id.length > maxLength) {
      fileIssue(
        "id",
        `is ${tenant.id.length} characters; at most ${maxLength} fit in PostgreSQL's 63-byte names with prefix ${ctx.namePrefix} (names are refused, never truncated)`,
      );
    }
    const names = Object.values(tenantNames(ctx.namePrefix, tenant.id));
    const clash = [tenant.id, ...names].find((n) => reserved.has(n) || n.startsWith("pg_"));
    if (clash !== undefined) {
      fileIssue(
        "id",
        `${JSON.stringify(clash)} is a reserved name (postgres, template0/1, public, pg_*, the template, the provisioning roles)`,
      );
    }
    const ending = RESERVED_ID_ENDINGS.find((e) => tenant.id.endsWith(e));
    if (ending !== undefined) {
      fileIssue("id", `must not end with ${ending}: another tenant's role names end that way`);
    }
    if (!ctx.tiers.includes(tenant.tier)) {
      fileIssue(
        "tier",
        `unknown tier ${JSON.stringify(tenant.tier)}; the stack has: ${ctx.tiers.join(", ")}`,
      );
    }
    const first = firstFileOfId.get(tenant.id);
    if (first !== undefined) {
      fileIssue("id", `duplicate id ${tenant.id}, already used by ${first}`);
    } else {
      firstFileOfId.set(tenant.id, file);
    }
    for (const [field, message] of lifecycleIssues(tenant, ctx)) fileIssue(field, message);
    tenants.push({ ...tenant, file });
  }

  if (issues.length > 0) {
    throw new InputError(`The tenants manifest has ${issues.length} problem(s):`, issues);
  }
  return tenants.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * Rules between fields of one file: offboarding is dated, and a move names another known tier
 * of a tenant that is still active. Returned as [field, message] pairs.
 */
function lifecycleIssues(tenant: TenantFile, ctx: ManifestContext): [string, string][] {
  const out: [string, string][] = [];
  if (tenant.state === "offboarded" && tenant.offboardedAt === undefined) {
    out.push([
      "offboardedAt",
      "is required with state: offboarded (the day retention starts, YYYY-MM-DD)",
    ]);
  }
  if (tenant.state !== "offboarded" && tenant.offboardedAt !== undefined) {
    out.push(["offboardedAt", "is only allowed with state: offboarded"]);
  }
  if (tenant.move !== undefined) {
    if (tenant.state === "offboarded") {
      out.push(["move", "an offboarded tenant cannot move; remove move"]);
    }
    if (tenant.move.to === tenant.tier) {
      out.push([
        "move.to",
        `is the tenant's tier already (${tenant.tier}); name another tier or remove move`,
      ]);
    } else if (!ctx.tiers.includes(tenant.move.to)) {
      out.push([
        "move.to",
        `unknown tier ${JSON.stringify(tenant.move.to)}; the stack has: ${ctx.tiers.join(", ")}`,
      ]);
    }
  }
  return out;
}

function allowedKeysAt(p: PropertyKey[]): readonly string[] {
  if (p[0] === "limits") return Object.keys(LimitsSchema.shape);
  if (p[0] === "move") return Object.keys(MoveSchema.shape);
  return Object.keys(TenantFileSchema.shape);
}

/** Reads `<dir>/*.yaml` (and `.yml`), named relative to `root` for messages. */
export function readTenantFiles(dir: string, root = process.cwd()): SourceFile[] {
  if (!fs.existsSync(dir)) {
    throw new InputError("The tenants manifest cannot be read:", [
      { file: path.relative(root, dir) || dir, field: "", message: "folder not found" },
    ]);
  }
  return fs
    .readdirSync(dir)
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()
    .map((name) => ({
      file: path.relative(root, path.join(dir, name)),
      text: fs.readFileSync(path.join(dir, name), "utf8"),
    }));
}

/** Reads and validates the tenants folder. */
export function loadManifest(dir: string, ctx: ManifestContext, root = process.cwd()): Tenant[] {
  return parseManifest(readTenantFiles(dir, root), ctx);
}

/** The JSON Schema editors use for tenant files (generated; see `npm run schema`). */
export function tenantJsonSchema(): Record<string, unknown> {
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: "tenant.schema.json",
    title: "pg-tenants tenant",
    ...(z.toJSONSchema(TenantFileSchema, { io: "input" }) as Record<string, unknown>),
  };
}
