import type { Client } from "pg";
import { CONTAINMENT_SCHEMA } from "../../../infra/containment";
import { sha256 } from "./files";
import { HISTORY_SCHEMA } from "./history";

/**
 * Schema drift: one catalog query per database gives everything a migration can shape (tables,
 * columns, types, defaults, constraints, indexes, sequences, views, functions, triggers, policies,
 * types, extensions, and who owns each), normalised so that two tenants compare; the diff
 * against the template's snapshot at the same version names each object and each field that
 * differs. Privileges are not here: the audit compares them with the model. Left out: PostgreSQL's
 * own schemas, the containment schema and the history (both checked elsewhere), extension members.
 * Run with search_path = pg_catalog, so expressions print fully qualified.
 */
const SNAPSHOT_SQL = `
WITH ns AS (
  SELECT oid, nspname, nspowner FROM pg_namespace
   WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', '${CONTAINMENT_SCHEMA}', '${HISTORY_SCHEMA}')
     AND nspname !~ '^pg_(toast_)?temp_'
), ext AS (
  SELECT classid, objid FROM pg_depend WHERE deptype = 'e'
), rel AS (
  SELECT c.*, n.nspname FROM pg_class c JOIN ns n ON n.oid = c.relnamespace
   WHERE NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)
)
SELECT json_build_object(
  'datdba', (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()),
  'extensions', (SELECT coalesce(json_agg(json_build_object('name', extname, 'schema', extnamespace::regnamespace::text) ORDER BY extname), '[]')
     FROM pg_extension WHERE extname <> 'plpgsql'),
  'schemas', (SELECT coalesce(json_agg(json_build_object('name', nspname, 'owner', pg_get_userbyid(nspowner)) ORDER BY nspname), '[]')
     FROM ns WHERE NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_namespace'::regclass AND ext.objid = ns.oid)),
  'relations', (SELECT coalesce(json_agg(json_build_object(
       'name', quote_ident(nspname) || '.' || quote_ident(relname), 'kind', relkind, 'owner', pg_get_userbyid(relowner),
       'persistence', relpersistence, 'options', reloptions, 'rls', relrowsecurity, 'forcerls', relforcerowsecurity,
       'partition', CASE WHEN relispartition THEN pg_get_expr(relpartbound, oid) END) ORDER BY nspname, relname), '[]')
     FROM rel WHERE relkind IN ('r', 'p', 'v', 'm', 'S', 'f')),
  'columns', (SELECT coalesce(json_agg(json_build_object(
       'rel', quote_ident(r.nspname) || '.' || quote_ident(r.relname), 'name', a.attname, 'position', a.pos,
       'type', format_type(a.atttypid, a.atttypmod), 'notnull', a.attnotnull,
       'default', pg_get_expr(d.adbin, d.adrelid), 'identity', a.attidentity, 'generated', a.attgenerated,
       'collation', CASE WHEN a.attcollation <> t.typcollation THEN a.attcollation::regcollation::text END)
       ORDER BY r.nspname, r.relname, a.pos), '[]')
     FROM rel r
     JOIN (SELECT *, row_number() OVER (PARTITION BY attrelid ORDER BY attnum) AS pos FROM pg_attribute
            WHERE attnum > 0 AND NOT attisdropped) a ON a.attrelid = r.oid
     JOIN pg_type t ON t.oid = a.atttypid
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE r.relkind IN ('r', 'p', 'v', 'm', 'f')),
  'constraints', (SELECT coalesce(json_agg(json_build_object(
       'on', coalesce(quote_ident(r.nspname) || '.' || quote_ident(r.relname), format_type(co.contypid, NULL)),
       'name', co.conname, 'type', co.contype, 'def', pg_get_constraintdef(co.oid), 'deferrable', co.condeferrable,
       'deferred', co.condeferred, 'valid', co.convalidated) ORDER BY 1, co.conname), '[]')
     FROM pg_constraint co JOIN ns ON ns.oid = co.connamespace LEFT JOIN rel r ON r.oid = co.conrelid),
  'indexes', (SELECT coalesce(json_agg(json_build_object(
       'name', quote_ident(r.nspname) || '.' || quote_ident(r.relname), 'def', pg_get_indexdef(i.indexrelid),
       'owner', pg_get_userbyid(r.relowner), 'valid', i.indisvalid) ORDER BY r.nspname, r.relname), '[]')
     FROM pg_index i JOIN rel r ON r.oid = i.indexrelid),
  'sequences', (SELECT coalesce(json_agg(json_build_object(
       'name', quote_ident(r.nspname) || '.' || quote_ident(r.relname), 'type', s.seqtypid::regtype::text,
       'start', s.seqstart, 'increment', s.seqincrement, 'min', s.seqmin, 'max', s.seqmax, 'cache', s.seqcache,
       'cycle', s.seqcycle,
       'ownedBy', (SELECT dc.refobjid::regclass::text || '.' || att.attname FROM pg_depend dc
                     JOIN pg_attribute att ON att.attrelid = dc.refobjid AND att.attnum = dc.refobjsubid
                    WHERE dc.classid = 'pg_class'::regclass AND dc.objid = r.oid AND dc.deptype IN ('a', 'i')
                      AND dc.refclassid = 'pg_class'::regclass LIMIT 1)) ORDER BY r.nspname, r.relname), '[]')
     FROM pg_sequence s JOIN rel r ON r.oid = s.seqrelid),
  'views', (SELECT coalesce(json_agg(json_build_object(
       'name', quote_ident(nspname) || '.' || quote_ident(relname), 'def', pg_get_viewdef(oid)) ORDER BY nspname, relname), '[]')
     FROM rel WHERE relkind IN ('v', 'm')),
  'functions', (SELECT coalesce(json_agg(json_build_object(
       'name', quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       'kind', p.prokind, 'owner', pg_get_userbyid(p.proowner), 'secdef', p.prosecdef,
       'def', CASE WHEN p.prokind IN ('f', 'p', 'w') THEN pg_get_functiondef(p.oid) END) ORDER BY 1), '[]')
     FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace
    WHERE NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_proc'::regclass AND ext.objid = p.oid)),
  'triggers', (SELECT coalesce(json_agg(json_build_object(
       'name', quote_ident(r.nspname) || '.' || quote_ident(r.relname) || '.' || quote_ident(tg.tgname),
       'def', pg_get_triggerdef(tg.oid), 'enabled', tg.tgenabled) ORDER BY 1), '[]')
     FROM pg_trigger tg JOIN rel r ON r.oid = tg.tgrelid WHERE NOT tg.tgisinternal),
  'policies', (SELECT coalesce(json_agg(json_build_object(
       'name', quote_ident(r.nspname) || '.' || quote_ident(r.relname) || '.' || quote_ident(po.polname),
       'cmd', po.polcmd, 'permissive', po.polpermissive,
       'roles', (SELECT array_agg(CASE WHEN x = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x) END ORDER BY 1) FROM unnest(po.polroles) x),
       'using', pg_get_expr(po.polqual, po.polrelid), 'check', pg_get_expr(po.polwithcheck, po.polrelid)) ORDER BY 1), '[]')
     FROM pg_policy po JOIN rel r ON r.oid = po.polrelid),
  'types', (SELECT coalesce(json_agg(json_build_object(
       'name', format_type(t.oid, NULL), 'kind', t.typtype, 'owner', pg_get_userbyid(t.typowner),
       'labels', (SELECT array_agg(enumlabel ORDER BY enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid),
       'base', CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
       'notnull', t.typnotnull, 'default', t.typdefault) ORDER BY 1), '[]')
     FROM pg_type t JOIN ns n ON n.oid = t.typnamespace
    WHERE (t.typtype IN ('e', 'd', 'r', 'm') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
      AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_type'::regclass AND ext.objid = t.oid))
)::text AS snapshot`;

/**
 * The raw snapshot of the connected database: one statement, so one snapshot of the catalogs.
 * The session's search_path must be pg_catalog (prepareSession sets it), so that expressions
 * print schema-qualified.
 */
export async function readSnapshot(c: Client): Promise<string> {
  const r = await c.query<{ snapshot: string }>(SNAPSHOT_SQL);
  return r.rows[0].snapshot;
}

/** Per section (columns, indexes, ...), each object's normalised fields as JSON text. */
export type Schema = Record<string, Record<string, string>>;

/**
 * Normalises a raw snapshot: the database's owner and pg_database_owner both become OWNER (a
 * template's objects belong to pg_database_owner, a migrated tenant's to its owner role), the
 * tenant's other roles become what they are (RW, RO, GROUP); any other owner stays as it is, so
 * it shows in a diff. Extensions the model creates in every tenant database are left out: the
 * audit checks them.
 */
export function normalize(
  raw: string,
  roles: Readonly<Record<string, string>>,
  modelExtensions: readonly string[],
): Schema {
  const snap = JSON.parse(raw) as Record<string, unknown>;
  const datdba = snap.datdba;
  const role = (r: unknown) =>
    r === "pg_database_owner" || r === datdba
      ? "OWNER"
      : typeof r === "string"
        ? (roles[r] ?? r)
        : r;
  const out: Schema = {};
  for (const [section, list] of Object.entries(snap)) {
    if (section === "datdba") continue;
    const objects: Record<string, string> = {};
    for (const o of list as Record<string, unknown>[]) {
      if (section === "extensions" && modelExtensions.includes(o.name as string)) continue;
      const key =
        section === "columns"
          ? `${String(o.rel)}.${String(o.name)}`
          : section === "constraints"
            ? `${String(o.on)}.${String(o.name)}`
            : String(o.name);
      const v: Record<string, unknown> = { ...o };
      delete v.name;
      if (section === "columns") delete v.rel;
      if (section === "constraints") delete v.on;
      if ("owner" in v) v.owner = role(v.owner);
      if (Array.isArray(v.roles)) v.roles = (v.roles as unknown[]).map(role).sort();
      objects[key] = JSON.stringify(v);
    }
    out[section] = objects;
  }
  return out;
}

/** A stable digest of a normalised schema: equal digests, equal schemas. */
export function schemaDigest(schema: Schema): string {
  const canonical = Object.keys(schema)
    .sort()
    .map((s) => [
      s,
      Object.keys(schema[s])
        .sort()
        .map((k) => [k, schema[s][k]]),
    ]);
  return sha256(JSON.stringify(canonical));
}

/** One difference: the section (columns, indexes, ...), the object, and what differs. */
export interface Difference {
  section: string;
  object: string;
  kind: "missing" | "unexpected" | "changed";
  detail: string;
}

/** Singular names for messages: `column app.orders.total_cents`. */
const NOUN: Record<string, string> = {
  extensions: "extension",
  schemas: "schema",
  relations: "relation",
  columns: "column",
  constraints: "constraint",
  indexes: "index",
  sequences: "sequence",
  views: "view",
  functions: "function",
  triggers: "trigger",
  policies: "policy",
  types: "type",
};

/** `column app.orders.total_cents: notnull true -> false` */
export function describeDifference(d: Difference): string {
  const what = `${NOUN[d.section] ?? d.section} ${d.object}`;
  switch (d.kind) {
    case "missing":
      return `${what} is missing (the template has it)`;
    case "unexpected":
      return `${what} is not in the template`;
    case "changed":
      return `${what}: ${d.detail}`;
  }
}

/** Differences of `actual` from `reference`, object by object and field by field, in a stable order. */
export function diffSchemas(reference: Schema, actual: Schema): Difference[] {
  const out: Difference[] = [];
  const sections = [...new Set([...Object.keys(reference), ...Object.keys(actual)])].sort();
  for (const section of sections) {
    const a = reference[section] ?? {};
    const b = actual[section] ?? {};
    for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      if (!(key in b)) out.push({ section, object: key, kind: "missing", detail: "" });
      else if (!(key in a)) out.push({ section, object: key, kind: "unexpected", detail: "" });
      else if (a[key] !== b[key]) {
        const x = JSON.parse(a[key]) as Record<string, unknown>;
        const y = JSON.parse(b[key]) as Record<string, unknown>;
        const fields = [...new Set([...Object.keys(x), ...Object.keys(y)])]
          .filter((f) => JSON.stringify(x[f]) !== JSON.stringify(y[f]))
          .sort();
        out.push({
          section,
          object: key,
          kind: "changed",
          detail: fields
            .map((f) => `${f} ${JSON.stringify(x[f] ?? null)} -> ${JSON.stringify(y[f] ?? null)}`)
            .join("; "),
        });
      }
    }
  }
  return out;
}
