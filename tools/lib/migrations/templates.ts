import type { Client } from "pg";
import { quoteIdent } from "../../../infra/sql";
import { connect, ClusterTarget } from "../pg";
import { CommandError } from "../cli";
import { Migration, templateName } from "./files";
import { normalize, readSnapshot, schemaDigest } from "./drift";
import { HISTORY_SCHEMA, readState } from "./history";
import { ensureLedger, readTemplateSnapshot, writeTemplateSnapshot } from "./ledger";
import { applyPending, baseline, prepareSession, SessionLimits } from "./runner";

/**
 * Template versions. Version 1 is built by the cluster bootstrap from 0001 (tools/cluster.ts),
 * as the superuser, with the containment's revokes in it. Version N is built by the
 * provisioning role: a clone of version N-1 (so whatever the bootstrap put in version 1 comes
 * along), migration N applied as pg_database_owner (so in every clone the clone's owner owns
 * the new objects, as for version 1's), the history recorded inside it (a clone starts with it:
 * origin `<family>_vN`, migrations 0001..N), then IS_TEMPLATE and no connections. A template is
 * never altered once built, so a CREATE DATABASE ... TEMPLATE in flight is never disturbed; an
 * old version stays until no stack names it (the audit lists it as superseded).
 */

export interface TemplateBuild {
  template: string;
  version: number;
  built: boolean;
  ms: number;
}

async function exists(maint: Client, name: string): Promise<boolean> {
  const r = await maint.query("SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1", [name]);
  return r.rowCount !== 0;
}

/** Builds every missing version from 2 to `target` on one cluster; version 1 must exist. */
export async function buildTemplates(
  target: ClusterTarget,
  maint: Client,
  family: string,
  migrations: readonly Migration[],
  version: number,
  limits: SessionLimits,
  ledger: boolean,
  searchPath: readonly string[],
): Promise<TemplateBuild[]> {
  const first = templateName(family, 1);
  if (!(await exists(maint, first))) {
    throw new CommandError(
      `cluster "${target.tier}" has no template ${first}: the cluster bootstrap builds it from ${migrations[0].file}`,
    );
  }
  const out: TemplateBuild[] = [];
  for (let v = 2; v <= version; v++) {
    const name = templateName(family, v);
    const started = Date.now();
    if (await exists(maint, name)) {
      out.push({ template: name, version: v, built: false, ms: 0 });
      continue;
    }
    await buildOne(target, maint, templateName(family, v - 1), name, migrations.slice(0, v), {
      limits,
      ledger,
      searchPath,
    });
    out.push({ template: name, version: v, built: true, ms: Date.now() - started });
  }
  return out;
}

/** Building goes under another name first: a half-built template never carries a version's name. */
const buildingName = (name: string) => `${name.slice(0, 50)}_building`;

async function buildOne(
  target: ClusterTarget,
  maint: Client,
  from: string,
  name: string,
  upTo: readonly Migration[],
  {
    limits,
    ledger,
    searchPath,
  }: { limits: SessionLimits; ledger: boolean; searchPath: readonly string[] },
): Promise<void> {
  const building = buildingName(name);
  const b = quoteIdent(building);
  // Left by a build that died: never a template, nobody clones it.
  await maint.query(`DROP DATABASE IF EXISTS ${b}`);
  await maint.query(`CREATE DATABASE ${b} TEMPLATE ${quoteIdent(from)}`);
  try {
    await maint.query(`REVOKE ALL ON DATABASE ${b} FROM PUBLIC`);
    // The migration runs as pg_database_owner, which holds nothing on the database itself:
    // CREATE (for CREATE SCHEMA) is lent for the build. Database ACLs are not cloned.
    await maint.query(`GRANT CREATE ON DATABASE ${b} TO pg_database_owner`);
    const c = await connect(target, building);
    let raw: string;
    try {
      await prepareSession(c, limits);
      const origin = { template: name, version: upTo.length, how: "cloned from the template" };
      // Version 1 (the bootstrap's) has no history: 0001 is recorded as applied.
      if ((await readState(c)).history === null) await baseline(c, upTo, origin);
      else {
        await c.query("BEGIN");
        await c.query(`DELETE FROM ${HISTORY_SCHEMA}.origin`);
        await c.query(
          `INSERT INTO ${HISTORY_SCHEMA}.origin (template, version, how) VALUES ($1, $2, $3)`,
          [origin.template, origin.version, origin.how],
        );
        await c.query("COMMIT");
      }
      const applied = (await readState(c)).history ?? [];
      const pending = upTo.slice(applied.length);
      const result = await applyPending(c, upTo, pending, "pg_database_owner", searchPath);
      if (result.failure !== undefined) {
        throw new CommandError(
          `building template ${name} on cluster "${target.tier}": migration ${result.failure.migration} failed: ${result.failure.message}${result.failure.code !== undefined ? ` (${result.failure.code})` : ""}; nothing was named ${name}`,
        );
      }
      // What came with the clone is recorded under the version's name, not the build's.
      await c.query(
        `UPDATE ${HISTORY_SCHEMA}.migrations SET applied_in = $1 WHERE applied_in = $2`,
        [name, building],
      );
      raw = await readSnapshot(c);
    } finally {
      await c.end().catch(() => undefined);
    }
    await maint.query(`REVOKE CREATE ON DATABASE ${b} FROM pg_database_owner`);
    await maint.query(`ALTER DATABASE ${b} RENAME TO ${quoteIdent(name)}`);
    await maint.query(
      `ALTER DATABASE ${quoteIdent(name)} IS_TEMPLATE true ALLOW_CONNECTIONS false`,
    );
    if (ledger) {
      const schema = normalize(raw, {}, []);
      await writeTemplateSnapshot(maint, name, upTo.length, schemaDigest(schema), raw);
    }
  } catch (e) {
    await maint.query(`DROP DATABASE IF EXISTS ${b}`).catch(() => undefined);
    throw e;
  }
}

/**
 * The raw snapshot of a template version: recorded when it was built, or read from a scratch
 * clone (version 1, built by the bootstrap, and templates whose record is gone), which is what a
 * new tenant starts as. The scratch clone is dropped at once.
 */
export async function templateSnapshot(
  target: ClusterTarget,
  maint: Client,
  template: string,
  version: number,
  ledger: boolean,
): Promise<string | undefined> {
  if (ledger) {
    const recorded = await readTemplateSnapshot(maint, template);
    if (recorded !== undefined) return recorded.snapshot;
  }
  if (!(await exists(maint, template))) return undefined;
  const scratch = `${template.slice(0, 50)}_snapshot`;
  const s = quoteIdent(scratch);
  await maint.query(`DROP DATABASE IF EXISTS ${s}`);
  await maint.query(`CREATE DATABASE ${s} TEMPLATE ${quoteIdent(template)}`);
  try {
    await maint.query(`REVOKE ALL ON DATABASE ${s} FROM PUBLIC`);
    const raw = await (async () => {
      const c = await connect(target, scratch);
      try {
        await c.query("SET search_path = pg_catalog");
        return await readSnapshot(c);
      } finally {
        await c.end().catch(() => undefined);
      }
    })();
    if (ledger) {
      await writeTemplateSnapshot(
        maint,
        template,
        version,
        schemaDigest(normalize(raw, {}, [])),
        raw,
      );
    }
    return raw;
  } finally {
    await maint.query(`DROP DATABASE IF EXISTS ${s}`).catch(() => undefined);
  }
}

/**
 * Records the drift check's reference of versions 1..`version` on a cluster where none is
 * recorded (what a migrate run does first): for a cluster just bootstrapped.
 */
export async function recordReferences(
  target: ClusterTarget,
  family: string,
  version: number,
): Promise<void> {
  const maint = await connect(target);
  try {
    if (!(await ensureLedger(maint, target.user))) return;
    for (let v = 1; v <= version; v++) {
      await templateSnapshot(target, maint, templateName(family, v), v, true);
    }
  } finally {
    await maint.end().catch(() => undefined);
  }
}
