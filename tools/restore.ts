import { databaseGrantsSql } from "../infra/modelSql";
import { CONTAINMENT_SCHEMA, EMPTY_TEMPLATE } from "../infra/containment";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Client } from "pg";
import type { TenantModel } from "../infra/model";
import { restoreDatabaseName } from "../infra/naming";
import { quoteIdent } from "../infra/sql";
import { archiveDatabaseName, readManifest, sha256File } from "./lib/archive";
import {
  CommandError,
  CommandIo,
  EXIT,
  findTenant,
  loadContext,
  readCommandArgs,
  processIo,
  runCommand,
} from "./lib/cli";
import { findPgTool, libpqEnv, listArchive, requireToolForServer, runPgTool } from "./lib/dump";
import { clusterTarget, connect, serverMajor, withClient } from "./lib/pg";
import { isSealed, openingKey, readSealHeader, unsealFile } from "./lib/seal";
import { compareContents, databaseContents, describeContents } from "./lib/contents";
import { asOwnerRoles, requireOwnOwners } from "./lib/copy";

/**
 * `npm run restore -- <tenant> <dump> [--stack <name>] [--without-manifest]`: restores a dump of
 * the tenant into a new database `<prefix><id>_restore_<UTC time>` on the tenant's cluster, owned
 * by the tenant's owner role. Every privilege comes from the model: the dump's own GRANTs are
 * skipped (`--no-acl`), so a dump cannot hand the restore to anybody else. The live database is
 * never touched. The dump is checked first (its manifest's tenant and checksum; without a
 * manifest only on `--without-manifest`; a readable archive dumped from the tenant's database);
 * after the restore every table's row count and checksum is compared with the manifest. On any
 * failure the new database is dropped and the message says so.
 */

/**
 * The live database parked by a swap: `<live>_old_<the restore's time>`, shorter than the
 * restore database's name, so it fits wherever that does (infra/naming.ts LONGEST_SUFFIX_LENGTH).
 */
export const PARKED_INFIX = "_old_";

export function parkedDatabaseName(live: string, restored: string): string {
  return `${live}${PARKED_INFIX}${restored.slice(-"YYYYMMDDHHMMSS".length)}`;
}

export async function main(argv: string[], io: CommandIo = processIo()): Promise<number> {
  return runCommand(io, async () => {
    const args = readCommandArgs(argv, "restore");
    const [id, dumpArg] = args.positionals;
    const ctx = loadContext(args.value("stack"), io.root);
    const { model } = findTenant(ctx, id);
    const dump = path.resolve(io.root, dumpArg);
    if (!fs.existsSync(dump)) throw new CommandError(`dump ${dumpArg} not found`);

    const manifest = readManifest(dump);
    if (manifest !== undefined) {
      if (manifest.tenant !== id) {
        throw new CommandError(
          `${dumpArg} is a dump of tenant ${manifest.tenant}, not of ${id}; nothing was changed`,
        );
      }
      if (manifest.stack !== ctx.cfg.stack) {
        throw new CommandError(
          `${dumpArg} is a dump of stack ${manifest.stack}, not of stack ${ctx.cfg.stack}: restore it with --stack ${manifest.stack}; nothing was changed`,
        );
      }
      if (manifest.tier !== model.tier) {
        throw new CommandError(
          `${dumpArg} was taken on cluster ${manifest.tier}, but tenant ${id} is on cluster ${model.tier} now (moved since?): a restore goes beside the live database on the tenant's own cluster; restore it there only after checking it is the dump you want, by copying it with a manifest whose tier is ${model.tier}; nothing was changed`,
        );
      }
      if (sha256File(dump) !== manifest.sha256) {
        throw new CommandError(
          `${dumpArg} does not match the checksum in its manifest (corrupted or altered); nothing was changed`,
        );
      }
    } else if (!args.flag("without-manifest")) {
      throw new CommandError(
        `${dumpArg}.json not found: without its manifest neither the dump's tenant nor its checksum nor its row counts can be verified; to restore it anyway pass --without-manifest (the dump's database name is still checked); nothing was changed`,
      );
    } else {
      io.err(
        `warning: ${dumpArg}.json not found: the restore cannot verify row counts against the backup`,
      );
    }

    const work = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-restore-"));
    try {
      let archive = dump;
      if (isSealed(dump)) {
        archive = path.join(work, "dump");
        const { header } = readSealHeader(dump);
        if (header.tenant !== id) {
          throw new CommandError(
            `${dumpArg} is sealed for tenant ${header.tenant}, not ${id}; nothing was changed`,
          );
        }
        unsealFile(dump, archive, await openingKey(header, io.env));
      }
      const pgRestore = findPgTool("pg_restore", io.env);
      const toc = await listArchive(pgRestore, archive).catch((e: Error) => {
        throw new CommandError(`${e.message}; nothing was changed`);
      });
      const dumped = archiveDatabaseName(toc);
      if (dumped !== model.database.name) {
        throw new CommandError(
          `${dumpArg} is a dump of database ${dumped ?? "(none named)"}, not of tenant ${id}'s database ${model.database.name}; nothing was changed`,
        );
      }

      const target = clusterTarget(ctx.cfg, model.tier, ctx.root, io.env);
      const name = restoreDatabaseName(ctx.cfg.namePrefix, id, io.now());
      const admin = await connect(target);
      let created = false;
      try {
        requireToolForServer(pgRestore, await serverMajor(admin), target.tier);
        const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
        if (exists.rowCount !== 0)
          throw new CommandError(`database ${name} exists already; try again in a second`);
        await admin.query(
          `CREATE DATABASE ${quoteIdent(name)} OWNER ${quoteIdent(model.database.owner)} TEMPLATE ${quoteIdent(EMPTY_TEMPLATE)} ENCODING 'UTF8' CONNECTION LIMIT ${model.database.connectionLimit}`,
        );
        created = true;
        // Database-level ACLs are not in a dump: the model's database grants, on the new database.
        for (const statement of databaseGrantsSql(model, name)) await admin.query(statement);
        // Large objects are restored as their owners' (ALTER LARGE OBJECT ... OWNER needs
        // membership of the owner): the tenant's roles only, granted for the restore alone.
        const owners = [...toc.matchAll(/^\d+; \d+ (\d+) BLOB - \d+ (\S+)$/gm)].map((m) => ({
          oid: m[1],
          owner: m[2],
        }));
        requireOwnOwners(
          owners,
          model.roles.map((r) => r.name),
        );
        await asOwnerRoles(admin, [...new Set(owners.map((o) => o.owner))], target.user, () =>
          runPgTool(
            pgRestore,
            [
              "--single-transaction",
              "--exit-on-error",
              "--no-acl",
              // Dumps made before the containment carry its schema; the target has it already.
              `--exclude-schema=${CONTAINMENT_SCHEMA}`,
              `--dbname=${name}`,
              archive,
            ],
            libpqEnv(target, name, io.env),
            `restoring into ${name}`,
          ),
        );
        await withClient(target, name, async (c) => {
          await applyModelPrivileges(c, model);
          if (manifest !== undefined) {
            const problems = compareContents(manifest, await databaseContents(c), name);
            if (problems.length > 0)
              throw new CommandError(
                `the restore does not match the backup: ${problems.join("; ")}`,
              );
          }
        });
      } catch (e) {
        if (created) {
          await admin
            .query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`)
            .catch(() => undefined);
          throw new CommandError(
            `${(e as Error).message}\nthe partial restore database ${name} was dropped; the live database ${model.database.name} was not touched`,
          );
        }
        throw e;
      } finally {
        await admin.end().catch(() => undefined);
      }

      const live = model.database.name;
      const parked = parkedDatabaseName(live, name);
      io.out(
        `restored ${dumpArg} into database ${name} on cluster ${model.tier} (the live database ${live} was not touched)`,
      );
      if (manifest !== undefined) {
        io.out(`verified ${describeContents(manifest)} against the backup manifest`);
      }
      io.out("");
      io.out(`Inspect it as ${target.user} (pg_hba admits the tenant's logins to ${live} only).`);
      io.out(
        `To swap it in, as ${target.user} on cluster ${model.tier} (connected to ${target.database}):`,
      );
      for (const sql of swapStatements(live, name, parked)) io.out(`  ${sql}`);
      io.out(
        `The program tracks the database by name: from then on ${live} is the restored one, with the`,
      );
      io.out(
        `tenant's grants. ${parked} (connections disallowed) is reported by npm run audit until dropped:`,
      );
      io.out(`  DROP DATABASE ${parked};`);
      return EXIT.ok;
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
}

/**
 * The model's grants inside the database (schemas, tables, sequences, default privileges), as
 * the provider issues them: REVOKE ALL, then GRANT. Run in the restored database, which holds no
 * ACL of the dump.
 */
export async function applyModelPrivileges(client: Client, model: TenantModel): Promise<void> {
  const statements: string[] = [];
  for (const g of model.grants) {
    if (g.objectType === "database" || g.schema === undefined) continue;
    const on =
      g.objectType === "schema"
        ? `SCHEMA ${quoteIdent(g.schema)}`
        : `ALL ${g.objectType.toUpperCase()}S IN SCHEMA ${quoteIdent(g.schema)}`;
    statements.push(`REVOKE ALL PRIVILEGES ON ${on} FROM ${quoteIdent(g.role)}`);
    if (g.privileges.length > 0)
      statements.push(`GRANT ${g.privileges.join(", ")} ON ${on} TO ${quoteIdent(g.role)}`);
  }
  for (const d of model.defaultPrivileges) {
    const head = `ALTER DEFAULT PRIVILEGES FOR ROLE ${quoteIdent(d.owner)} IN SCHEMA ${quoteIdent(d.schema)}`;
    const what = `${d.objectType.toUpperCase()}S`;
    statements.push(`${head} REVOKE ALL ON ${what} FROM ${quoteIdent(d.role)}`);
    if (d.privileges.length > 0)
      statements.push(
        `${head} GRANT ${d.privileges.join(", ")} ON ${what} TO ${quoteIdent(d.role)}`,
      );
  }
  await client.query("BEGIN");
  try {
    for (const sql of statements) await client.query(sql);
    await client.query("COMMIT");
  } catch (e) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw new CommandError(`applying the model's grants: ${(e as Error).message}`);
  }
}

/** The statements that put a restore database in place of the live one, keeping the old one closed. */
export function swapStatements(live: string, restored: string, parked: string): string[] {
  return [
    `ALTER DATABASE ${live} ALLOW_CONNECTIONS false;`,
    `-- wait until SELECT count(*) FROM pg_stat_activity WHERE datname = '${live}' is 0 (or end those sessions)`,
    `ALTER DATABASE ${live} RENAME TO ${parked};`,
    `ALTER DATABASE ${restored} RENAME TO ${live};`,
  ];
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
