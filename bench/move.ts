import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import { writeStackFile, captureIo } from "../harness/dayTwo";
import { connectAs, FLEET_STACK, provisionFleet, PROVISIONER } from "../harness/fleet";
import { main as move } from "../tools/move";
import { compareContents, databaseContents } from "../tools/lib/contents";
import { copyContents, emptyContents } from "../tools/lib/copy";

/**
 * How long a tier move keeps a tenant frozen (served nowhere), per GB of data, on two embedded
 * PostgreSQL 15 clusters (so that the machine's pg_dump 15 can take part):
 *
 * - `move` as it runs: COPY of every table from the frozen source into one target transaction,
 *   verified inside it (row counts, checksums, sequences, large objects) before it commits;
 * - the pg_dump way it replaced: `pg_dump --data-only -Fc` to a file, `pg_restore
 *   --single-transaction`, then the same verification, all under the freeze;
 * - the floor of any online copy (a snapshot copied while the source serves, the changes caught
 *   up under the freeze): the freeze must still prove the target equals the frozen source, one
 *   checksum pass over the source, whatever else it skips.
 *
 * Eight writers run during the measured move; every acknowledged row must be on the target.
 * `npx ts-node bench/move.ts [MB]` prints the table (default 256 MB).
 */

export interface MoveBenchResult {
  megabytes: number;
  bytes: number;
  copySeconds: number;
  copyAloneSeconds: number;
  dumpSeconds: number;
  checksumSeconds: number;
  acknowledged: number;
  lost: number;
  markdown: string;
}

const yaml = (tier: string, extra = "") =>
  `id: acme\ndisplayName: Acme\ntier: ${tier}\nstate: active\n${extra}`;

export async function benchMove(megabytes = 256): Promise<MoveBenchResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-bench-move-"));
  const file = path.join(dir, "acme.yaml");
  fs.writeFileSync(file, yaml("standard", "move:\n  to: premium\n"));
  const fleet = await provisionFleet({
    tiers: ["standard", "premium"],
    tenants: dir,
    pgVersion: 15,
  });
  try {
    writeStackFile(fleet);
    const su = (tier: string, db = "tenant_acme") => fleet.clusters[tier].superuserClient(db);
    const source = await su("standard");
    // Rows of about 1 kB: a payload of text and a jsonb, the shape of an application's events.
    const rows = Math.round((megabytes * 1024 * 1024) / 1100);
    await source.query(
      `INSERT INTO app.events (kind, payload)
       SELECT 'k' || (g % 16), jsonb_build_object('n', g, 'body', repeat(md5(g::text), 28))
       FROM generate_series(1, $1::int) g`,
      [rows],
    );
    await source.query("VACUUM ANALYZE app.events");
    const bytes = Number(
      (await source.query("SELECT pg_database_size('tenant_acme')::bigint AS b")).rows[0].b,
    );
    await source.end();
    const gb = bytes / 1024 ** 3;

    // The pg_dump way, timed step by step under an equivalent freeze (no tenant session).
    const pw = fleet.config.clusterPasswords as Record<string, string>;
    const env = (tier: string) => ({
      ...process.env,
      PGHOST: fleet.clusters[tier].host,
      PGPORT: String(fleet.clusters[tier].port),
      PGUSER: PROVISIONER,
      PGPASSWORD: pw[tier],
      PGDATABASE: "tenant_acme",
    });
    const dumpFile = path.join(dir, "data.dump");
    let started = process.hrtime.bigint();
    const dumped = spawnSync(
      "pg_dump",
      [
        "--data-only",
        "--format=custom",
        "--exclude-schema=pgtenants_history",
        `--file=${dumpFile}`,
      ],
      { env: env("standard"), encoding: "utf8" },
    );
    const restored = spawnSync(
      "pg_restore",
      ["--data-only", "--single-transaction", "--exit-on-error", "--dbname=tenant_acme", dumpFile],
      { env: env("premium"), encoding: "utf8" },
    );
    if (dumped.status !== 0 || restored.status !== 0)
      throw new Error(`pg_dump/pg_restore failed: ${dumped.stderr}${restored.stderr}`);
    const verify = async (tier: string) => {
      const c = await fleet.clusters[tier].provisionerClient("tenant_acme");
      try {
        return await databaseContents(c);
      } finally {
        await c.end();
      }
    };
    await verify("standard");
    await verify("premium");
    const dumpSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const target = await su("premium");
    await target.query("TRUNCATE app.customers, app.invoices, app.events RESTART IDENTITY CASCADE");
    await target.end();

    // The copy `move` does under its freeze, without writers around: the same calls, timed alone.
    started = process.hrtime.bigint();
    const [src, counter, tgt] = [
      await fleet.clusters.standard.provisionerClient("tenant_acme"),
      await fleet.clusters.standard.provisionerClient("tenant_acme"),
      await fleet.clusters.premium.provisionerClient("tenant_acme"),
    ];
    await src.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const snap = (await src.query("SELECT pg_export_snapshot() AS s")).rows[0].s as string;
    await counter.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    await counter.query(`SET TRANSACTION SNAPSHOT '${snap}'`);
    await tgt.query("BEGIN");
    const counting = databaseContents(counter);
    await copyContents(src, tgt, { allowedOwners: [], provisioner: PROVISIONER });
    const problems = compareContents(await counting, await databaseContents(tgt), "the target");
    if (problems.length > 0) throw new Error(problems.join("; "));
    await tgt.query("COMMIT");
    const copyAloneSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    await tgt.query("BEGIN");
    await emptyContents(tgt);
    await tgt.query("COMMIT");
    for (const c of [src, counter, tgt]) await c.end();

    // The floor of an online copy: one verification pass over the frozen source.
    started = process.hrtime.bigint();
    await verify("standard");
    const checksumSeconds = Number(process.hrtime.bigint() - started) / 1e9;

    // The move itself, with eight writers until the freeze stops them.
    const acknowledged: number[] = [];
    let stop = false;
    const writer = async () => {
      let c: Client | undefined;
      while (!stop) {
        try {
          if (c === undefined) {
            c = await connectAs(fleet.outputs.credentials.acme.rw);
            c.on("error", () => undefined);
          }
          const r = await c.query("INSERT INTO app.events (kind) VALUES ('writer') RETURNING id");
          acknowledged.push(Number(r.rows[0].id));
        } catch {
          await c?.end().catch(() => undefined);
          c = undefined;
          // An application backs off between reconnects; a tight loop would measure SCRAM, not the move.
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      await c?.end().catch(() => undefined);
    };
    const writers = Array.from({ length: 8 }, writer);
    await new Promise((r) => setTimeout(r, 500));
    const io = captureIo(fleet);
    const code = await move(["acme", "--stack", FLEET_STACK], io);
    stop = true;
    await Promise.all(writers);
    if (code !== 0) throw new Error(`the move failed: ${io.errors.join("\n")}`);
    const frozen = /frozen \(served nowhere\) for ([\d.]+) s/.exec(io.lines.join("\n"));
    const copySeconds = Number(frozen?.[1]);
    const check = await su("premium");
    const present = new Set(
      (await check.query("SELECT id FROM app.events WHERE kind = 'writer'")).rows.map((r) =>
        Number(r.id),
      ),
    );
    await check.end();
    const lost = acknowledged.filter((id) => !present.has(id)).length;

    const perGb = (s: number) => (s / gb).toFixed(1);
    const markdown = [
      `### Tier move: freeze time per GB (two embedded PostgreSQL 15 clusters, ${(bytes / 1024 ** 2).toFixed(0)} MB tenant database)`,
      "",
      "| copy under the freeze | frozen (s) | s per GB |",
      "| --- | ---: | ---: |",
      `| \`move\`'s copy alone: COPY into one target transaction, verified before commit | ${copyAloneSeconds.toFixed(1)} | ${perGb(copyAloneSeconds)} |`,
      `| pg_dump --data-only to a file, pg_restore --single-transaction, same verification | ${dumpSeconds.toFixed(1)} | ${perGb(dumpSeconds)} |`,
      `| floor of an online copy: one verification pass over the frozen source | ${checksumSeconds.toFixed(1)} | ${perGb(checksumSeconds)} |`,
      "",
      `The whole \`move\` (freeze to close, with eight writers retrying until the freeze ended them): frozen ${copySeconds.toFixed(1)} s (${perGb(copySeconds)} s per GB); ${acknowledged.length} rows acknowledged, ${lost} lost.`,
      "",
    ].join("\n");
    return {
      megabytes,
      bytes,
      copySeconds,
      copyAloneSeconds,
      dumpSeconds,
      checksumSeconds,
      acknowledged: acknowledged.length,
      lost,
      markdown,
    };
  } finally {
    await fleet.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  void benchMove(Number(process.argv[2] ?? 256)).then(
    (r) => console.log(r.markdown),
    (e: Error) => {
      console.error(e.message);
      process.exitCode = 1;
    },
  );
}
