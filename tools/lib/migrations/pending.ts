import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { PROJECT, StackConfig } from "../../../infra/config";
import { parseTemplate } from "../../../infra/templates";
import { MIGRATION_FILE, MIGRATIONS_DIR, loadMigrations, sha256, stackTemplate } from "./files";

/**
 * The offline check's view of the migrations: which version the stack's template names, what
 * a deploy of this change will apply to every existing tenant (the migrations between the base's
 * template version and this one), files not yet named by the stack, and what must be refused:
 * a migration already released (in the base) whose file changed, or a stack that goes back a
 * version.
 */
export interface MigrationPlan {
  template: string;
  version: number;
  /** The newest migration file. */
  latest: number;
  /** The base's template version, with --base. */
  baseVersion?: number;
  /** What migrate applies to the tenants of this stack after the deploy (with --base: the new ones only). */
  pending: string[];
  /** Files past the stack's version: in the folder, not yet named by this stack. */
  ahead: string[];
  problems: string[];
}

/** The base's stack template and migration files (a folder or a git revision), if it has them. */
function readBase(
  base: string,
  stack: string,
  root: string,
): { template?: string; files: Map<string, string> } {
  const stackFile = `stacks/Pulumi.${stack}.yaml`;
  const files = new Map<string, string>();
  const dir = path.resolve(root, base);
  const templateOf = (text: string | undefined) => {
    if (text === undefined) return undefined;
    const doc = parse(text) as { config?: Record<string, unknown> } | null;
    const t = doc?.config?.[`${PROJECT}:template`];
    return typeof t === "string" ? t : undefined;
  };
  if (fs.existsSync(dir) && fs.statSync(dir).isDirectory()) {
    const m = path.join(dir, MIGRATIONS_DIR);
    if (fs.existsSync(m)) {
      for (const f of fs.readdirSync(m)) {
        if (MIGRATION_FILE.test(f))
          files.set(f.slice(0, -4), fs.readFileSync(path.join(m, f), "utf8"));
      }
    }
    const s = path.join(dir, stackFile);
    return {
      template: templateOf(fs.existsSync(s) ? fs.readFileSync(s, "utf8") : undefined),
      files,
    };
  }
  const git = (args: string[]) =>
    execFileSync("git", args, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  const rel = MIGRATIONS_DIR.split(path.sep).join("/");
  let listed: string[] = [];
  try {
    listed = git(["ls-tree", "--name-only", base, "--", `${rel}/`])
      .split("\n")
      .filter((p) => p !== "");
  } catch {
    listed = [];
  }
  for (const p of listed) {
    const f = path.posix.basename(p);
    if (MIGRATION_FILE.test(f)) files.set(f.slice(0, -4), git(["show", `${base}:./${p}`]));
  }
  let stackText: string | undefined;
  try {
    stackText = git(["show", `${base}:./${stackFile}`]);
  } catch {
    stackText = undefined;
  }
  return { template: templateOf(stackText), files };
}

export function migrationPlan(
  cfg: Pick<StackConfig, "stack" | "template">,
  root: string,
  base?: string,
): MigrationPlan {
  const migrations = loadMigrations(path.join(root, MIGRATIONS_DIR));
  const { family, version } = stackTemplate(cfg.template, cfg.stack, migrations);
  const problems: string[] = [];
  let from = 1;
  let baseVersion: number | undefined;
  if (base !== undefined) {
    const b = readBase(base, cfg.stack, root);
    for (const m of migrations) {
      const before = b.files.get(m.name);
      if (before !== undefined && sha256(before) !== m.checksum) {
        problems.push(
          `${path.relative(root, m.file)} changed against ${base}: a released migration is never edited (tenants applied it as it was); add a new one`,
        );
      }
    }
    for (const name of b.files.keys()) {
      if (!migrations.some((m) => m.name === name)) {
        problems.push(`migration ${name} of ${base} is gone: released migrations stay`);
      }
    }
    const parsed = b.template !== undefined ? parseTemplate(b.template) : undefined;
    if (parsed !== undefined && parsed.family === family) {
      baseVersion = parsed.version;
      from = parsed.version;
      if (parsed.version > version) {
        problems.push(
          `pg-tenants:template goes back from ${b.template} to ${cfg.template}: tenants at version ${parsed.version} cannot return to ${version}`,
        );
      }
    }
  }
  return {
    template: cfg.template,
    version,
    latest: migrations.length,
    ...(baseVersion !== undefined ? { baseVersion } : {}),
    pending: migrations.slice(from, version).map((m) => m.name),
    ahead: migrations.slice(version).map((m) => m.name),
    problems,
  };
}

/** Lines for the text report. */
export function planLines(p: MigrationPlan): string[] {
  const lines = [
    `  template ${p.template}: version ${p.version} of ${p.latest} migration(s)${p.baseVersion !== undefined ? ` (base: version ${p.baseVersion})` : ""}`,
    `  pending for existing tenants after the deploy: ${p.pending.join(", ") || "none"}`,
  ];
  if (p.ahead.length > 0) lines.push(`  not yet named by this stack: ${p.ahead.join(", ")}`);
  for (const problem of p.problems) lines.push(`  REFUSED ${problem}`);
  return lines;
}

/**
 * The check's migration section: undefined where the root has no migrations folder (a checkout
 * without templates); a stack whose template names no version of them is a refusal.
 */
export function stackMigrationPlan(
  cfg: Pick<StackConfig, "stack" | "template">,
  root: string,
  base?: string,
): MigrationPlan | undefined {
  if (!fs.existsSync(path.join(root, MIGRATIONS_DIR))) return undefined;
  try {
    return migrationPlan(cfg, root, base);
  } catch (e) {
    return {
      template: cfg.template,
      version: 0,
      latest: 0,
      pending: [],
      ahead: [],
      problems: [(e as Error).message],
    };
  }
}

/** Lines for the markdown report. */
export function planMarkdown(p: MigrationPlan): string[] {
  const code = (names: string[]) => names.map((n) => `\`${n}\``).join(", ") || "none";
  const lines = [
    `Template \`${p.template}\`: version ${p.version} of ${p.latest} migration(s)${p.baseVersion !== undefined ? ` (base: version ${p.baseVersion})` : ""}.`,
    "",
    `Pending for existing tenants after the deploy (\`migrate\` applies them, canary first): ${code(p.pending)}.`,
  ];
  if (p.ahead.length > 0) lines.push("", `Not yet named by this stack: ${code(p.ahead)}.`);
  for (const problem of p.problems)
    lines.push("", `**Refused:** ${problem.replace(/[|<>]/g, " ")}`);
  return lines;
}
