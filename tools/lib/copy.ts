import type { Client } from "pg";
import { from as copyFrom, to as copyTo } from "pg-copy-streams";
import { pipeline } from "stream/promises";
import { quoteIdent } from "../../infra/sql";
import { CommandError } from "./cli";
import { userSequences } from "./contents";
import { STABLE_OUTPUT_SETTINGS, userTables } from "./tables";

/**
 * A tenant's data copied from one database into another over two connections, with COPY and
 * plain SQL only: no pg_dump, no child process, and so no dependence on the client tools'
 * version (a PostgreSQL 17 source is copied by a machine whose pg_dump is 15). The source is
 * read in one snapshot; the target is written in the caller's transaction, so an interrupted
 * copy leaves nothing behind. Tables are loaded in foreign-key order (parents first), every
 * column but generated ones (identity values are kept as they are), then every sequence's value,
 * then the large objects with their oids, owners and grants.
 */

export interface TableRef {
  schema: string;
  name: string;
}

const qualified = (t: TableRef) => `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;

/** The user tables in an order that loads every referenced table before its referrers. */
export async function tablesInLoadOrder(client: Client): Promise<TableRef[]> {
  const tables = await userTables(client);
  const key = (t: TableRef) => `${t.schema}.${t.name}`;
  const fks = await client.query<{ child: string; parent: string }>(
    `SELECT cn.nspname || '.' || c.relname AS child, pn.nspname || '.' || p.relname AS parent
     FROM pg_constraint k
     JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
     JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
     WHERE k.contype = 'f' AND k.conrelid <> k.confrelid`,
  );
  const parents = new Map<string, Set<string>>(tables.map((t) => [key(t), new Set()]));
  for (const fk of fks.rows) parents.get(fk.child)?.add(fk.parent);
  const ordered: TableRef[] = [];
  const placed = new Set<string>();
  let left = [...tables];
  while (left.length > 0) {
    const ready = left.filter((t) =>
      [...(parents.get(key(t)) ?? [])].every((p) => placed.has(p) || !parents.has(p)),
    );
    if (ready.length === 0) {
      throw new CommandError(
        `tables ${left.map(key).join(", ")} reference each other in a cycle: a copy cannot load them one after the other; nothing was changed`,
      );
    }
    for (const t of ready) {
      ordered.push(t);
      placed.add(key(t));
    }
    left = left.filter((t) => !placed.has(key(t)));
  }
  return ordered;
}

/** The columns a COPY carries: every live column but generated ones, in table order. */
async function copyColumns(client: Client, t: TableRef): Promise<string[]> {
  const r = await client.query<{ attname: string }>(
    `SELECT a.attname FROM pg_attribute a
     WHERE a.attrelid = format('%I.%I', $1::text, $2::text)::regclass
       AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
     ORDER BY a.attnum`,
    [t.schema, t.name],
  );
  return r.rows.map((row) => row.attname);
}

export interface CopyOptions {
  /** Roles the target's large objects may belong to (the tenant's own); others are refused. */
  allowedOwners: readonly string[];
  /** The provisioning role: it takes each owner role for the length of the transaction. */
  provisioner: string;
  /** Called after each table is loaded, with its name (progress and fault injection). */
  onTable?: (table: string) => Promise<void> | void;
}

/**
 * Copies tables, sequences and large objects from `source` (in a REPEATABLE READ transaction
 * the caller opened) into `target` (in a transaction the caller opened and commits).
 */
export async function copyContents(
  source: Client,
  target: Client,
  opts: CopyOptions,
): Promise<void> {
  for (const s of STABLE_OUTPUT_SETTINGS) {
    await source.query(s);
    await target.query(s);
  }
  for (const t of await tablesInLoadOrder(source)) {
    const cols = (await copyColumns(source, t)).map(quoteIdent).join(", ");
    const out = source.query(copyTo(`COPY ${qualified(t)} (${cols}) TO STDOUT`));
    const into = target.query(copyFrom(`COPY ${qualified(t)} (${cols}) FROM STDIN`));
    await pipeline(out, into);
    await opts.onTable?.(`${t.schema}.${t.name}`);
  }
  for (const s of await userSequences(source)) {
    const r = await source.query<{ v: string; c: boolean }>(
      `SELECT last_value::text AS v, is_called AS c FROM ${qualified(s)}`,
    );
    await target.query("SELECT setval(format('%I.%I', $1::text, $2::text)::regclass, $3, $4)", [
      s.schema,
      s.name,
      r.rows[0].v,
      r.rows[0].c,
    ]);
  }
  await copyLargeObjects(source, target, opts);
}

/** Large objects are read and written in pieces of this size: memory stays bounded. */
const LO_CHUNK = 1 << 20;

/** Large objects: same oid, content, owner and grants on the target. */
async function copyLargeObjects(source: Client, target: Client, opts: CopyOptions): Promise<void> {
  const objects = await source.query<{ oid: string; owner: string }>(
    "SELECT m.oid::text AS oid, pg_get_userbyid(m.lomowner)::text AS owner FROM pg_largeobject_metadata m ORDER BY m.oid",
  );
  if (objects.rowCount === 0) return;
  requireOwnOwners(
    objects.rows.map((o) => ({ oid: o.oid, owner: o.owner })),
    opts.allowedOwners,
  );
  const owners = [...new Set(objects.rows.map((o) => o.owner))];
  // Inside the target's transaction: the temporary memberships are revoked before it commits.
  await asOwnerRoles(target, owners, opts.provisioner, async () => {
    for (const o of objects.rows) {
      let offset = 0;
      for (;;) {
        const piece = await source.query<{ data: Buffer }>(
          "SELECT lo_get($1::oid, $2::bigint, $3::int) AS data",
          [o.oid, offset, LO_CHUNK],
        );
        const data = piece.rows[0].data;
        if (offset === 0)
          await target.query("SELECT lo_from_bytea($1::oid, $2::bytea)", [o.oid, data]);
        else if (data.length > 0)
          await target.query("SELECT lo_put($1::oid, $2::bigint, $3::bytea)", [
            o.oid,
            offset,
            data,
          ]);
        offset += data.length;
        if (data.length < LO_CHUNK) break;
      }
      await target.query(`ALTER LARGE OBJECT ${Number(o.oid)} OWNER TO ${quoteIdent(o.owner)}`);
    }
    const grants = await source.query<{ oid: string; grantee: string; privilege: string }>(
      `SELECT m.oid::text AS oid, pg_get_userbyid(a.grantee)::text AS grantee, a.privilege_type AS privilege
       FROM pg_largeobject_metadata m, LATERAL aclexplode(m.lomacl) a
       WHERE a.grantee <> m.lomowner AND a.grantee <> 0 ORDER BY 1, 2, 3`,
    );
    for (const g of grants.rows) {
      if (!opts.allowedOwners.includes(g.grantee)) continue;
      await target.query(
        `GRANT ${g.privilege === "UPDATE" ? "UPDATE" : "SELECT"} ON LARGE OBJECT ${Number(g.oid)} TO ${quoteIdent(g.grantee)}`,
      );
    }
  });
}

/** Refuses large objects that belong to a role outside the tenant: they cannot be restored as its own. */
export function requireOwnOwners(
  objects: readonly { oid: string; owner: string }[],
  allowed: readonly string[],
): void {
  const foreign = objects.find((o) => !allowed.includes(o.owner));
  if (foreign !== undefined) {
    throw new CommandError(
      `large object ${foreign.oid} belongs to role ${foreign.owner}, which is not one of the tenant's roles (${allowed.join(", ")}): give it to one of them (ALTER LARGE OBJECT ${foreign.oid} OWNER TO ...) and run again; nothing was changed`,
    );
  }
}

/**
 * Runs `fn` while the provisioning role may act as each of `roles`: giving a large object to a
 * role needs membership of it (SET on PostgreSQL 16+). Roles it can already act as (the tenant's
 * owner, through the program's GrantRole) are left alone, so the revoke never removes a
 * membership the program declared. Inside a transaction the grant is never seen by anyone else;
 * outside one (pg_restore runs in its own session), it lasts exactly as long as `fn` and the
 * audit reports it if the process dies in between.
 */
export async function asOwnerRoles<T>(
  client: Client,
  roles: readonly string[],
  provisioner: string,
  fn: () => Promise<T>,
): Promise<T> {
  const major = Math.floor(
    Number(
      (await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v"))
        .rows[0].v,
    ) / 10000,
  );
  const missing: string[] = [];
  for (const role of roles) {
    const r = await client.query<{ ok: boolean }>("SELECT pg_has_role($1, $2, $3) AS ok", [
      provisioner,
      role,
      major >= 16 ? "SET" : "MEMBER",
    ]);
    if (!r.rows[0].ok) missing.push(role);
  }
  for (const role of missing)
    await client.query(`GRANT ${quoteIdent(role)} TO ${quoteIdent(provisioner)}`);
  try {
    return await fn();
  } finally {
    for (const role of missing)
      await client
        .query(`REVOKE ${quoteIdent(role)} FROM ${quoteIdent(provisioner)}`)
        .catch(() => undefined);
  }
}

/**
 * Empties a target database back to what the program provisioned: every user table truncated
 * (identities restarted), every other sequence back at its start, every large object removed.
 */
export async function emptyContents(client: Client): Promise<void> {
  const tables = await userTables(client);
  if (tables.length > 0) {
    await client.query(
      `TRUNCATE ${tables.map((t) => qualified(t)).join(", ")} RESTART IDENTITY CASCADE`,
    );
  }
  for (const s of await userSequences(client)) {
    await client.query(
      "SELECT setval(c.oid, s.seqstart, false) FROM pg_class c JOIN pg_sequence s ON s.seqrelid = c.oid WHERE c.oid = format('%I.%I', $1::text, $2::text)::regclass",
      [s.schema, s.name],
    );
  }
  await client.query("SELECT lo_unlink(oid) FROM pg_largeobject_metadata");
}
