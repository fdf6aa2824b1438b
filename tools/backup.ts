import * as fs from "fs";
import * as path from "path";
import { DumpManifest, dumpWithStats, manifestPath, sha256File } from "./lib/archive";
import {
  CommandError,
  CommandIo,
  EXIT,
  ensureParent,
  fileStamp,
  findTenant,
  loadContext,
  readCommandArgs,
  processIo,
  restrictFile,
  runCommand,
  tenantOfRole,
} from "./lib/cli";
import { describeContents } from "./lib/contents";
import { safeOutputPath } from "./lib/files";
import { clusterTarget, withClient } from "./lib/pg";

/**
 * `npm run backup -- <tenant> [--stack <name>] [--out <file>]`: a restorable pg_dump
 * custom-format archive of one tenant's database, and `<file>.json` with the row count and
 * content checksum of every table, taken from the snapshot the dump reads. Read-only on the
 * cluster. Default file: backups/<tenant>/<tenant>-<UTC time>.dump.
 */

export async function main(argv: string[], io: CommandIo = processIo()): Promise<number> {
  return runCommand(io, async () => {
    const args = readCommandArgs(argv, "backup");
    const [id] = args.positionals;
    const ctx = loadContext(args.value("stack"), io.root);
    const { model } = findTenant(ctx, id);
    const now = io.now();
    const file = safeOutputPath(
      io.root,
      args.text("out") ?? path.join("backups", id, `${id}-${fileStamp(now)}.dump`),
      "--out",
    );
    if (fs.existsSync(file)) throw new CommandError(`${file} exists already; choose another --out`);
    ensureParent(file);
    const partial = `${file}.partial`;
    const target = clusterTarget(ctx.cfg, model.tier, ctx.root, io.env);
    try {
      io.progress?.(`backup: dumping ${model.database.name} on cluster ${model.tier}`);
      const result = await withClient(target, model.database.name, (client) =>
        dumpWithStats(client, target, model.database.name, partial, io.env, [], tenantOfRole(ctx)),
      );
      io.progress?.(`backup: dumped; writing the manifest of ${result.tables.length} table(s)`);
      fs.renameSync(partial, file);
      // A tenant's whole data: readable by the operator alone.
      restrictFile(file);
      const manifest: DumpManifest = {
        format: "pg-tenants-dump/1",
        tenant: id,
        stack: ctx.cfg.stack,
        tier: model.tier,
        database: model.database.name,
        createdAt: now.toISOString(),
        serverVersion: result.serverVersion,
        pgDump: result.pgDump,
        sha256: sha256File(file),
        bytes: fs.statSync(file).size,
        tables: result.tables,
        sequences: result.sequences,
        largeObjects: result.largeObjects,
      };
      fs.writeFileSync(manifestPath(file), JSON.stringify(manifest, null, 2) + "\n", {
        mode: 0o600,
      });
      io.out(`backup of tenant ${id} (database ${model.database.name} on cluster ${model.tier})`);
      io.out(
        `wrote ${path.relative(io.root, file)} (${manifest.bytes} bytes) and ${path.relative(io.root, manifestPath(file))}`,
      );
      for (const t of result.tables) io.out(`  ${t.table}: ${t.rows} row(s)`);
      if (result.largeObjects.count > 0) io.out(`  large objects: ${result.largeObjects.count}`);
      io.out(
        `${describeContents(result)}; restore with: npm run restore -- ${id} ${path.relative(io.root, file)}${ctx.cfg.stack === "local" ? "" : ` --stack ${ctx.cfg.stack}`}`,
      );
      return EXIT.ok;
    } finally {
      fs.rmSync(partial, { force: true });
    }
  });
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
