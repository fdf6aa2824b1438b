import * as fs from "fs";
import * as path from "path";
import { parseDocument } from "yaml";
import { z } from "zod";
import { readInputFile } from "./files";
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
  /** Today (UTC, YYYY-MM-DD): an offboarding cannot be dated later. Unchecked when absent. */
  today?: string;
}

/** Names that are never a tenant's, whatever the stack says. */
export const ALWAYS_RESERVED = ["postgres", "template0", "template1", "public"];

export interface SourceFile {
  /** Path relative to the project root, e.g. `tenants/acme.yaml`. */
  file: string;
  text: string;
  /** Why the file could not be read (then `text` is empty): reported with the other problems. */
  problem?: string;
}

/** The most YAML aliases one file may expand: a few are normal, thousands are an alias bomb. */
export const MAX_YAML_ALIASES = 100;

/**
 * Parses one YAML document: malformed YAML, repeated keys and alias bombs become messages (the
 * expansion is refused before it happens), never exceptions.
 */
export function parseYaml(text: string): { value: unknown } | { problems: string[] } {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return { problems: doc.errors.map((e) => `malformed YAML: ${e.message.split("\n")[0]}`) };
  }
  try {
    return { value: doc.toJS({ maxAliasCount: MAX_YAML_ALIASES }) };
  } catch (e) {
    return {
      problems: [
        /alias/i.test((e as Error).message)
          ? `malformed YAML: aliases expand too far (more than ${MAX_YAML_ALIASES} expansions; an alias bomb?)`
          : `malformed YAML: ${(e as Error).message.split("\n")[0]}`,
      ],
    };
  }
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

  for (const { file, text, problem } of files) {
    if (problem !== undefined) {
      issues.push({ file, field: "", message: problem });
      continue;
    }
    const yaml = parseYaml(text);
    if ("problems" in yaml) {
      for (const message of yaml.problems) issues.push({ file, field: "", message });
      continue;
    }
    const raw = yaml.value ?? {};
    const fileIssue = (field: string, message: string) => issues.push({ file, field, message });
    const parsed = TenantFileSchema.safeParse(raw);
    if (!parsed.success) {
      issues.push(...zodIssues(file, parsed.error, allowedKeysAt));
      // The fields that did parse are checked too: one run shows every problem of the file.
      const partial = partialTenant(raw, parsed.error);
      if (partial !== undefined) {
        for (const [field, message] of crossFieldIssues(partial, file, ctx, reserved)) {
          if (!issues.some((i) => i.file === file && i.field === field)) fileIssue(field, message);
        }
      }
      continue;
    }
    const tenant = parsed.data;

    for (const [field, message] of crossFieldIssues(tenant, file, ctx, reserved))
      fileIssue(field, message);
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

/** The fields of a file that failed the schema that are still usable for the other checks. */
function partialTenant(raw: unknown, error: z.ZodError): TenantFile | undefined {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return undefined;
  const bad = new Set(
    error.issues.filter((i) => i.code !== "unrecognized_keys").map((i) => String(i.path[0])),
  );
  const fields = Object.fromEntries(
    Object.entries(raw as Record<string, unknown>).filter(
      ([k]) => !bad.has(k) && Object.keys(TenantFileSchema.shape).includes(k),
    ),
  );
  const loose = TenantFileSchema.partial().safeParse(fields);
  if (!loose.success || typeof loose.data.id !== "string" || typeof loose.data.tier !== "string")
    return undefined;
  return loose.data as TenantFile;
}

/** The checks that need several fields or the stack, as [field, message] pairs. */
function crossFieldIssues(
  tenant: TenantFile,
  file: string,
  ctx: ManifestContext,
  reserved: ReadonlySet<string>,
): [string, string][] {
  const out: [string, string][] = [];
  const fileIssue = (field: string, message: string) => out.push([field, message]);
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
  out.push(...lifecycleIssues(tenant, ctx));
  return out;
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
  if (
    tenant.offboardedAt !== undefined &&
    ctx.today !== undefined &&
    isCalendarDate(tenant.offboardedAt) &&
    tenant.offboardedAt > ctx.today
  ) {
    out.push([
      "offboardedAt",
      `is in the future (today is ${ctx.today}): it is the day the tenant was offboarded, from which its retention counts`,
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
    .map((name) => {
      const file = path.relative(root, path.join(dir, name));
      const read = readInputFile(path.join(dir, name));
      return "text" in read ? { file, text: read.text } : { file, text: "", problem: read.problem };
    });
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
