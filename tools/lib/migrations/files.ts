import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { parseTemplate, TemplateVersion, templateName } from "../../../infra/templates";
import { CommandError } from "../cli";

export { parseTemplate, templateName };
export type { TemplateVersion };

/**
 * The template's migrations: plain SQL files `NNNN_name.sql` in one folder, numbered 0001, 0002,
 * ... without gaps. Version N of the template is the first N files; its database is
 * `<family>_v<N>` (the stack config's `template` names the version a stack is at). 0001 is the
 * SQL the cluster bootstrap builds the first template from; every later file is applied to the
 * previous version's template (a clone) and to every tenant, with node-pg-migrate.
 */

/** Where the migrations live, relative to the project root. */
export const MIGRATIONS_DIR = path.join("templates", "customer", "migrations");

/**
 * A migration's file name. node-pg-migrate writes the name into its history INSERT as text, so
 * only this alphabet may reach it; the number is the version the file brings a database to.
 */
export const MIGRATION_FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export interface Migration {
  /** 1 for 0001_*.sql: the template version this migration brings a database to. */
  version: number;
  /** The file name without `.sql`: what the history records. */
  name: string;
  file: string;
  sql: string;
  /** sha256 of the file's bytes, recorded beside the name; an applied file must never change. */
  checksum: string;
}

export const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

/** Every migration of the folder, in order; a misnamed file or a gap is refused with its name. */
export function loadMigrations(dir: string): Migration[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new CommandError(`migrations folder ${dir} does not exist`);
  }
  const names = fs
    .readdirSync(dir)
    .filter((f) => !f.startsWith("."))
    .sort();
  const out: Migration[] = [];
  for (const f of names) {
    const m = MIGRATION_FILE.exec(f);
    if (m === null) {
      throw new CommandError(
        `${path.join(dir, f)}: a migration is named NNNN_name.sql (four digits, then lowercase letters, digits and _); nothing else belongs in ${dir}`,
      );
    }
    const version = Number(m[1]);
    if (version !== out.length + 1) {
      throw new CommandError(
        `${path.join(dir, f)}: expected migration ${String(out.length + 1).padStart(4, "0")}_*.sql next (versions are numbered from 0001 without gaps or repeats)`,
      );
    }
    const file = path.join(dir, f);
    const stat = fs.lstatSync(file);
    if (!stat.isFile()) throw new CommandError(`${file}: a migration must be a regular file`);
    const sql = fs.readFileSync(file, "utf8");
    out.push({ version, name: f.slice(0, -4), file, sql, checksum: sha256(sql) });
  }
  if (out.length === 0) throw new CommandError(`no migrations in ${dir} (0001_*.sql comes first)`);
  return out;
}

/**
 * The stack's template as a version of the migrations: refused when the name has no `_v<N>` or
 * names a version with no migration file.
 */
export function stackTemplate(
  template: string,
  stack: string,
  migrations: readonly Migration[],
): TemplateVersion {
  const parsed = parseTemplate(template);
  if (parsed === undefined) {
    throw new CommandError(
      `stack ${stack}: pg-tenants:template ${template} names no version; template databases are named <family>_v<N> (e.g. customer_template_v1)`,
    );
  }
  if (parsed.version > migrations.length) {
    const file = (n: number) => `${String(n).padStart(4, "0")}_*.sql`;
    const next = migrations.length + 1;
    const missing =
      parsed.version === next ? file(next) : `${file(next)} to ${file(parsed.version)}`;
    throw new CommandError(
      `stack ${stack}: pg-tenants:template ${template} is version ${parsed.version}, but there are ${migrations.length} migration(s); add ${missing} or name ${templateName(parsed.family, migrations.length)}`,
    );
  }
  return parsed;
}

/**
 * What identifies a version's migrations: the ordered names and checksums. The ledger stores
 * it, so a file edited after it was applied makes every ledger row of that stack untrusted.
 */
export function digestOf(list: readonly { name: string; checksum: string | null }[]): string {
  return sha256(list.map((m) => `${m.name}:${m.checksum ?? ""}`).join("\n"));
}

/** The SQL of the first template version, relative to the project root: what the bootstrap runs. */
export const FIRST_TEMPLATE_SQL = path.join(MIGRATIONS_DIR, "0001_customer_template_v1.sql");

/**
 * What a cluster bootstrap builds for a stack whose template is `template`: version 1 of its
 * family, from 0001. Later versions are built from it by the provisioning role (templates.ts).
 */
export function firstTemplateOf(
  root: string,
  template: string,
  stack: string,
): { name: string; sqlFile: string } {
  const migrations = loadMigrations(path.join(root, MIGRATIONS_DIR));
  const { family } = stackTemplate(template, stack, migrations);
  return { name: templateName(family, 1), sqlFile: migrations[0].file };
}
