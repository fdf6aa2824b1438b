import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { Client } from "pg";
import {
  maxTenantIdLength,
  PG_MAX_IDENTIFIER_BYTES,
  restoreDatabaseName,
} from "../../infra/naming";
import type { DumpManifest } from "../../tools/lib/archive";
import { sealFile } from "../../tools/lib/seal";
import { main as backup } from "../../tools/backup";
import { main as restore, parkedDatabaseName } from "../../tools/restore";
import { captureIo, writeStackFile } from "../../harness/dayTwo";
import { connectAs, Fleet, FLEET_STACK, provisionFleet } from "../../harness/fleet";

/**
 * Per-tenant backup and restore on a PostgreSQL 15 cluster (Debian's pg_dump here is 15 and
 * refuses newer servers): a round trip with data, the restore beside the live database with
 * the tenant's grants, the printed swap, and every failure path leaving data where it was.
 */

const NOW = new Date("2026-11-26T07:00:00Z");
const RESTORED = "tenant_acme_restore_20261126070000";
const S = ["--stack", FLEET_STACK];

describe("restore's parked database name", () => {
  it("fits in 63 bytes for the longest tenant id allowed", () => {
    const id = "a".repeat(maxTenantIdLength("tenant_"));
    const restored = restoreDatabaseName("tenant_", id, NOW);
    const parked = parkedDatabaseName(`tenant_${id}`, restored);
    assert.equal(parked, `tenant_${id}_old_20261126070000`);
    assert.equal(Buffer.byteLength(restored), PG_MAX_IDENTIFIER_BYTES);
    assert.ok(Buffer.byteLength(parked) <= PG_MAX_IDENTIFIER_BYTES, parked);
  });
});

describe("npm run backup / npm run restore on PostgreSQL 15", () => {
  let fleet: Fleet;
  let dump: string;
  let printed: string[] = [];

  const login = (id: string, kind: "rw" | "ro", database?: string): Promise<Client> =>
    connectAs(fleet.outputs.credentials[id][kind], database);
  const provisioner = () => fleet.clusters.standard.provisionerClient();
  const rowsOf = async (client: Client) => ({
    customers: (
      await client.query("SELECT id, email, name, created_at FROM app.customers ORDER BY id")
    ).rows,
    invoices: (
      await client.query(
        "SELECT id, customer_id, amount_cents, note_encrypted, issued_at FROM app.invoices ORDER BY id",
      )
    ).rows,
    events: (await client.query("SELECT id, kind, payload, at FROM app.events ORDER BY id")).rows,
  });
  const restoreDatabases = async () => {
    const c = await provisioner();
    try {
      return (
        await c.query("SELECT datname FROM pg_database WHERE datname LIKE '%restore%' ORDER BY 1")
      ).rows.map((r) => r.datname);
    } finally {
      await c.end();
    }
  };

  beforeAll(async () => {
    fleet = await provisionFleet({
      tiers: ["standard"],
      tenants: [
        { id: "acme", tier: "standard" },
        { id: "initech", tier: "standard" },
      ],
      pgVersion: 15,
    });
    writeStackFile(fleet);
    const rw = await login("acme", "rw");
    try {
      const key = fleet.outputs.credentials.acme.dataKey;
      for (let i = 1; i <= 3; i++) {
        await rw.query("INSERT INTO app.customers (email, name) VALUES ($1, $2)", [
          `c${i}@acme.test`,
          `Customer ${i}`,
        ]);
      }
      for (let i = 1; i <= 5; i++) {
        await rw.query(
          "INSERT INTO app.invoices (customer_id, amount_cents, note_encrypted) VALUES ($1, $2, pgp_sym_encrypt($3, $4))",
          [((i - 1) % 3) + 1, i * 1250, `note ${i}`, key],
        );
      }
      await rw.query(
        `INSERT INTO app.events (kind, payload) VALUES ('signup', '{"plan": "pro"}'), ('login', '{}')`,
      );
    } finally {
      await rw.end();
    }
    // A grant outside the model in the live database: the dump carries it, the restore must not.
    const su = await fleet.clusters.standard.superuserClient("tenant_acme");
    try {
      await su.query("GRANT SELECT ON app.customers TO tenant_initech_rw");
    } finally {
      await su.end();
    }
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it("writes a custom-format dump and a manifest of every table's rows", async () => {
    const io = captureIo(fleet, {}, () => NOW);
    assert.equal(await backup(["acme", ...S], io), 0, io.errors.join("\n"));
    dump = path.join(fleet.root, "backups", "acme", "acme-20261126T070000Z.dump");
    assert.equal(fs.readFileSync(dump).subarray(0, 5).toString("latin1"), "PGDMP");
    const manifest = JSON.parse(fs.readFileSync(`${dump}.json`, "utf8")) as DumpManifest;
    assert.equal(manifest.tenant, "acme");
    assert.equal(manifest.database, "tenant_acme");
    assert.equal(manifest.tier, "standard");
    assert.equal(manifest.bytes, fs.statSync(dump).size);
    assert.deepEqual(
      manifest.tables.map((t) => `${t.table}=${t.rows}`),
      ["app.customers=3", "app.events=2", "app.invoices=5"],
    );
    assert.deepEqual(io.lines.slice(0, 2), [
      "backup of tenant acme (database tenant_acme on cluster standard)",
      "wrote backups/acme/acme-20261126T070000Z.dump (" +
        manifest.bytes +
        " bytes) and backups/acme/acme-20261126T070000Z.dump.json",
    ]);
    assert.equal(
      io.lines.at(-1),
      "3 table(s), 10 row(s), 3 sequence(s), 0 large object(s); restore with: npm run restore -- acme backups/acme/acme-20261126T070000Z.dump --stack integration",
    );
    assert.deepEqual(
      manifest.sequences?.map((q) => `${q.sequence}=${q.lastValue}`),
      ["app.customers_id_seq=3", "app.events_id_seq=2", "app.invoices_id_seq=5"],
    );
    assert.deepEqual(manifest.largeObjects, { count: 0, owners: {}, checksum: "0" });
  });

  it("stops after the lock timeout when a tenant session holds a table, naming the session and tenant", async () => {
    const holder = await connectAs(fleet.outputs.credentials.acme.rw);
    try {
      await holder.query("BEGIN");
      await holder.query("LOCK TABLE app.events IN ACCESS EXCLUSIVE MODE");
      const pid = (await holder.query("SELECT pg_backend_pid() AS p")).rows[0].p as number;
      const io = captureIo(fleet, { PGTENANTS_LOCK_TIMEOUT_MS: "500" }, () => NOW);
      const started = Date.now();
      assert.equal(await backup(["acme", ...S, "--out", "locked.dump"], io), 1);
      assert.ok(Date.now() - started < 20_000, `waited ${Date.now() - started} ms`);
      assert.equal(io.errors.length, 1);
      assert.match(
        io.errors[0],
        new RegExp(
          `^error: dumping database tenant_acme of cluster "standard" waited for a lock another session holds and gave up \\((lock_timeout|pg_dump: .*app.events.*)\\): session ${pid} of tenant_acme_rw \\(tenant acme\\) holds AccessExclusiveLock on app.events \\(idle in transaction, transaction open \\d+ s\\): end it with SELECT pg_terminate_backend\\(${pid}\\)`,
        ),
      );
      assert.equal(fs.existsSync(path.join(fleet.root, "locked.dump")), false);
    } finally {
      await holder.end();
    }
  });

  it("restores beside the live database, verified, with the tenant's grants, without touching the live one", async () => {
    // A write after the backup: the live database keeps it, the restore does not have it.
    const rw = await login("acme", "rw");
    await rw.query("INSERT INTO app.events (kind) VALUES ('after-backup')");
    const live = await rowsOf(rw);
    await rw.end();

    const io = captureIo(fleet, {}, () => NOW);
    assert.equal(
      await restore(["acme", path.relative(fleet.root, dump), ...S], io),
      0,
      io.errors.join("\n"),
    );
    assert.equal(
      io.lines[0],
      `restored backups/acme/acme-20261126T070000Z.dump into database ${RESTORED} on cluster standard (the live database tenant_acme was not touched)`,
    );
    assert.equal(
      io.lines[1],
      "verified 3 table(s), 10 row(s), 3 sequence(s), 0 large object(s) against the backup manifest",
    );

    const c = await fleet.clusters.standard.superuserClient(RESTORED);
    try {
      const restored = await rowsOf(c);
      assert.deepEqual(restored.customers, live.customers);
      assert.deepEqual(restored.invoices, live.invoices);
      assert.deepEqual(restored.events, live.events.slice(0, 2));
      const key = fleet.outputs.credentials.acme.dataKey;
      const notes = await c.query(
        "SELECT pgp_sym_decrypt(note_encrypted, $1) AS n FROM app.invoices ORDER BY id",
        [key],
      );
      assert.deepEqual(
        notes.rows.map((r) => r.n),
        ["note 1", "note 2", "note 3", "note 4", "note 5"],
      );
      const priv = await c.query(`SELECT
          has_table_privilege('tenant_acme_rw', 'app.customers', 'INSERT') AS rw_insert,
          has_table_privilege('tenant_acme_ro', 'app.customers', 'SELECT') AS ro_select,
          has_table_privilege('tenant_acme_ro', 'app.customers', 'INSERT') AS ro_insert,
          has_table_privilege('tenant_initech_rw', 'app.customers', 'SELECT') AS other_select,
          has_database_privilege('tenant_acme', current_database(), 'CONNECT') AS group_connect,
          has_database_privilege('tenant_initech', current_database(), 'CONNECT') AS other_connect,
          (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()) AS owner,
          (SELECT count(*)::int FROM pg_extension WHERE extname = 'pgcrypto') AS pgcrypto,
          (SELECT count(*)::int FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace
            WHERE n.nspname = 'app' AND pg_get_userbyid(d.defaclrole) = 'tenant_acme_owner') AS default_acls`);
      assert.deepEqual(priv.rows[0], {
        rw_insert: true,
        ro_select: true,
        ro_insert: false,
        other_select: false,
        group_connect: true,
        other_connect: false,
        owner: "tenant_acme_owner",
        pgcrypto: 1,
        default_acls: 2,
      });
    } finally {
      await c.end();
    }
    const after = await login("acme", "rw");
    assert.deepEqual(await rowsOf(after), live);
    await after.end();
    printed = io.lines;

    const again = captureIo(fleet, {}, () => NOW);
    assert.equal(await restore(["acme", dump, ...S], again), 1);
    assert.deepEqual(again.errors, [
      `error: database ${RESTORED} exists already; try again in a second`,
    ]);
  });

  it("prints a swap that works: run as the provisioning role, the tenant's login then sees the restored data", async () => {
    const swap = printed.filter((l) => l.startsWith("  ALTER DATABASE")).map((l) => l.trim());
    assert.deepEqual(swap, [
      "ALTER DATABASE tenant_acme ALLOW_CONNECTIONS false;",
      "ALTER DATABASE tenant_acme RENAME TO tenant_acme_old_20261126070000;",
      `ALTER DATABASE ${RESTORED} RENAME TO tenant_acme;`,
    ]);
    const c = await provisioner();
    try {
      for (const sql of swap) await c.query(sql);
    } finally {
      await c.end();
    }
    const rw = await login("acme", "rw");
    try {
      const events = await rw.query("SELECT kind FROM app.events ORDER BY id");
      assert.deepEqual(
        events.rows.map((r) => r.kind),
        ["signup", "login"],
      );
      await rw.query("INSERT INTO app.events (kind) VALUES ('after-swap')");
    } finally {
      await rw.end();
    }
    assert.deepEqual(await restoreDatabases(), []);
  });

  it("refuses an unknown tenant, another tenant's dump, a corrupted and a truncated dump; nothing is left behind", async () => {
    const before = await restoreDatabases();

    const unknown = captureIo(fleet);
    assert.equal(await restore(["umbrella", dump, ...S], unknown), 1);
    assert.match(
      unknown.errors[0],
      /^error: unknown tenant "umbrella": no .*umbrella\.yaml in stack integration's manifest \(tenants: acme, initech\)$/,
    );

    const other = captureIo(fleet);
    assert.equal(await restore(["initech", dump, ...S], other), 1);
    assert.deepEqual(other.errors, [
      `error: ${dump} is a dump of tenant acme, not of initech; nothing was changed`,
    ]);

    const corrupted = path.join(fleet.root, "corrupted.dump");
    const bytes = fs.readFileSync(dump);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    fs.writeFileSync(corrupted, bytes);
    fs.copyFileSync(`${dump}.json`, `${corrupted}.json`);
    const bad = captureIo(fleet);
    assert.equal(await restore(["acme", corrupted, ...S], bad), 1);
    assert.deepEqual(bad.errors, [
      `error: ${corrupted} does not match the checksum in its manifest (corrupted or altered); nothing was changed`,
    ]);

    const garbage = path.join(fleet.root, "garbage.dump");
    fs.writeFileSync(garbage, "this is not a dump\n");
    const notDump = captureIo(fleet);
    assert.equal(await restore(["acme", garbage, ...S, "--without-manifest"], notDump), 1);
    assert.equal(
      notDump.errors[0],
      `warning: ${garbage}.json not found: the restore cannot verify row counts against the backup`,
    );
    assert.match(
      notDump.errors[1],
      new RegExp(
        `^error: ${garbage} is not a readable custom-format dump \\(corrupted or truncated\\?\\): .*; nothing was changed$`,
      ),
    );

    const truncated = path.join(fleet.root, "truncated.dump");
    fs.writeFileSync(truncated, bytes.subarray(0, bytes.length - 200));
    const cut = captureIo(fleet, {}, () => new Date("2026-11-26T08:00:00Z"));
    assert.equal(await restore(["acme", truncated, ...S, "--without-manifest"], cut), 1);
    const message = cut.errors.slice(1).join("\n");
    assert.match(
      message,
      /^error: restoring into tenant_acme_restore_20261126080000 failed \(pg_restore exit 1\): /,
    );
    assert.ok(
      message.endsWith(
        "the partial restore database tenant_acme_restore_20261126080000 was dropped; the live database tenant_acme was not touched",
      ),
      message,
    );
    assert.deepEqual(await restoreDatabases(), before);
  });

  it("refuses a dump without its manifest unless --without-manifest, and another tenant's dump, plain or sealed, by the database it was dumped from", async () => {
    const before = await restoreDatabases();
    const later = () => new Date("2026-11-26T09:00:00Z");

    const orphan = path.join(fleet.root, "no-manifest.dump");
    fs.copyFileSync(dump, orphan);
    const refused = captureIo(fleet, {}, later);
    assert.equal(await restore(["acme", orphan, ...S], refused), 1);
    assert.deepEqual(refused.errors, [
      `error: ${orphan}.json not found: without its manifest neither the dump's tenant nor its checksum nor its row counts can be verified; to restore it anyway pass --without-manifest (the dump's database name is still checked); nothing was changed`,
    ]);

    const initech = path.join(fleet.root, "initech.dump");
    const made = captureIo(fleet, {}, later);
    assert.equal(
      await backup(["initech", ...S, "--out", initech], made),
      0,
      made.errors.join("\n"),
    );
    fs.rmSync(`${initech}.json`);
    const foreign = captureIo(fleet, {}, later);
    assert.equal(await restore(["acme", initech, ...S, "--without-manifest"], foreign), 1);
    assert.deepEqual(foreign.errors, [
      `warning: ${initech}.json not found: the restore cannot verify row counts against the backup`,
      `error: ${initech} is a dump of database tenant_initech, not of tenant acme's database tenant_acme; nothing was changed`,
    ]);

    // Sealed: initech's dump under a header naming acme (and acme's key) is refused once opened;
    // acme's own dump sealed for initech is refused by its header.
    const key = crypto.randomBytes(32);
    const sealing = { key, header: { keySource: "local" as const } };
    const disguised = path.join(fleet.root, "initech-as-acme.dump.sealed");
    sealFile(initech, disguised, "acme", sealing, NOW);
    const opened = captureIo(fleet, { PGTENANTS_DATA_KEY_ACME: key.toString("base64") }, later);
    assert.equal(await restore(["acme", disguised, ...S, "--without-manifest"], opened), 1);
    assert.equal(
      opened.errors[1],
      `error: ${disguised} is a dump of database tenant_initech, not of tenant acme's database tenant_acme; nothing was changed`,
    );
    const sealedOther = path.join(fleet.root, "acme-for-initech.dump.sealed");
    sealFile(dump, sealedOther, "initech", sealing, NOW);
    const header = captureIo(fleet, { PGTENANTS_DATA_KEY_INITECH: key.toString("base64") }, later);
    assert.equal(await restore(["acme", sealedOther, ...S, "--without-manifest"], header), 1);
    assert.equal(
      header.errors[1],
      `error: ${sealedOther} is sealed for tenant initech, not acme; nothing was changed`,
    );

    assert.deepEqual(await restoreDatabases(), before);
  });

  it("fails clearly on a wrong password, a missing pg_dump and a stopped cluster, writing no file", async () => {
    const out = path.join(fleet.root, "never.dump");
    const wrong = captureIo(fleet, { PGTENANTS_PASSWORD_STANDARD: "wrong" });
    assert.equal(await backup(["acme", ...S, "--out", out], wrong), 1);
    assert.deepEqual(wrong.errors, [
      `error: password authentication failed for pgtenants_provisioner on cluster "standard" at 127.0.0.1:${fleet.clusters.standard.port}: check PGTENANTS_PASSWORD_STANDARD (the stack secret pg-tenants:clusterPasswords.standard)`,
    ]);

    const noTool = captureIo(fleet, { PGTENANTS_PG_BIN: path.join(fleet.root, "no-such-bin") });
    assert.equal(await backup(["acme", ...S, "--out", out], noTool), 1);
    assert.deepEqual(noTool.errors, [
      `error: pg_dump not found in PGTENANTS_PG_BIN=${path.join(fleet.root, "no-such-bin")}: install the PostgreSQL client tools of the clusters' version or newer (Debian: apt-get install -y postgresql-client-15; for PostgreSQL 17 servers postgresql-client-17) or set PGTENANTS_PG_BIN to their bin folder`,
    ]);

    const unknown = captureIo(fleet);
    assert.equal(await backup(["umbrella", ...S, "--out", out], unknown), 1);

    await fleet.clusters.standard.stop();
    const down = captureIo(fleet);
    assert.equal(await backup(["acme", ...S, "--out", out], down), 1);
    assert.deepEqual(down.errors, [
      `error: cannot reach cluster "standard" at 127.0.0.1:${fleet.clusters.standard.port}: connection refused (is the cluster running? for the local stack: npm run local)`,
    ]);
    assert.equal(fs.existsSync(out), false);
    assert.equal(fs.existsSync(`${out}.partial`), false);
  });
});
