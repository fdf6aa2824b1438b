import * as fs from "fs";
import * as path from "path";
import { parseDocument } from "yaml";
import { z } from "zod";
import { InputError, InputIssue, zodIssues } from "./issues";
import { maxTenantIdLength, RESERVED_ID_ENDINGS, TENANT_ID_PATTERN, tenantNames } from "./naming";

export const TENANT_STATES = ["active"] as const;
export type TenantState = (typeof TENANT_STATES)[number];

const LimitsSchema = z.strictObject({
  connectionLimit: z
    .number({ error: "must be a number" })
    .int({ error: "must be a whole number" })
    .min(1, { error: "must be from 1 to 10000" })
    .max(10000, { error: "must be from 1 to 10000" })
    .optional()
    .describe("Connection limit of the database and of each login role (default: the tier's)."),
  statementTimeoutMs: z
    .number({ error: "must be a number" })
    .int({ error: "must be a whole number of milliseconds" })
    .min(0, { error: "must be 0 (no timeout) or more milliseconds" })
    .optional()
    .describe("Statement timeout of the login roles in milliseconds (default: the tier's)."),
});

/** The shape of one `tenants/<id>.yaml`; `tenants/tenant.schema.json` is generated from it. */
export const TenantFileSchema = z
  .strictObject({
    id: z
      .string({ error: "must be a string" })
      .regex(TENANT_ID_PATTERN, {
        error: "must match ^[a-z][a-z0-9_]*$ (a lowercase letter, then lowercase letters, digits or _)",
      })
      .describe("Stable tenant id; the file must be named <id>.yaml. Never change it."),
    displayName: z
      .string({ error: "must be a string" })
      .min(1, { error: "must not be empty" })
      .max(200, { error: "must be at most 200 characters" })
      .describe("Human-readable name, used in tags and reports only."),
    tier: z
      .string({ error: "must be a string" })
      .describe("A tier of the stack config (pg-tenants:clusters); decides the cluster."),
    state: z
      .enum(TENANT_STATES, { error: `must be one of ${TENANT_STATES.join(", ")}` })
      .default("active")
      .describe("Lifecycle state of the tenant."),
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
      fileIssue("id", `${JSON.stringify(clash)} is a reserved name (postgres, template0/1, public, pg_*, the template, the provisioning roles)`);
    }
    const ending = RESERVED_ID_ENDINGS.find((e) => tenant.id.endsWith(e));
    if (ending !== undefined) {
      fileIssue("id", `must not end with ${ending}: another tenant's role names end that way`);
    }
    if (!ctx.tiers.includes(tenant.tier)) {
      fileIssue("tier", `unknown tier ${JSON.stringify(tenant.tier)}; the stack has: ${ctx.tiers.join(", ")}`);
    }
    const first = firstFileOfId.get(tenant.id);
    if (first !== undefined) {
      fileIssue("id", `duplicate id ${tenant.id}, already used by ${first}`);
    } else {
      firstFileOfId.set(tenant.id, file);
    }
    tenants.push({ ...tenant, file });
  }

  if (issues.length > 0) {
    throw new InputError(`The tenants manifest has ${issues.length} problem(s):`, issues);
  }
  return tenants.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function allowedKeysAt(p: PropertyKey[]): readonly string[] {
  if (p[0] === "limits") return Object.keys(LimitsSchema.shape);
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
