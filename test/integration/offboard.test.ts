import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { Client } from "pg";
import type { AuditReport } from "../../tools/audit";
import { main as audit } from "../../tools/audit";
import { main as offboard } from "../../tools/offboard";
import { main as restore } from "../../tools/restore";
import { SEAL_MAGIC } from "../../tools/lib/seal";
import { captureIo, writeStackFile } from "../../harness/dayTwo";
import { connectAs, Fleet, FLEET_STACK, PROVISIONER, provisionFleet } from "../../harness/fleet";

/**
 * Offboarding on a real cluster (PostgreSQL 15 for Debian's pg_dump 15): `state: offboarded`
 * applied by the program closes the tenant; the final dump is sealed with the tenant's data key
 * and restorable; the purge is refused inside the retention period and drops only that tenant.
 */

const S = ["--stack", FLEET_STACK];
const yaml = (id: string, extra = "") =>
  `id: ${id}\ndisplayName: Tenant ${id}\ntier: standard\n${extra}`;
const at = (iso: string) => () => new Date(iso);
/** What closes an offboarded tenant's database, and that its data is still there. */
const CLOSED = `SELECT has_database_privilege('tenant_acme', 'tenant_acme', 'CONNECT') AS group_connect,
  has_database_privilege('public', 'tenant_acme', 'CONNECT') AS public_connect,
  (SELECT datallowconn FROM pg_database WHERE datname = 'tenant_acme') AS datallowconn,
  (SELECT count(*)::int FROM app.customers) AS customers`;

describe("npm run offboard", () => {
  let fleet: Fleet;
  let dir: string;
  let keyEnv: Record<string, string>;
  let sealed: string;
  /** An acme session opened before the offboarding was applied: it must not outlive the final dump. */
  let lingering: Client;

  const q = async (sql: string, params: unknown[] = [], database = "postgres") => {
    const c = await fleet.clusters.standard.superuserClient(database);
    try {
      return (await c.query(sql, params)).rows;
    } finally {
      await c.end();
    }
  };
  const login = (id: string): Promise<Client> => connectAs(fleet.outputs.credentials[id].rw);

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-offboard-tenants-"));
    fs.writeFileSync(path.join(dir, "acme.yaml"), yaml("acme"));
    fs.writeFileSync(path.join(dir, "initech.yaml"), yaml("initech"));
    // premium holds no tenant: it is where a tier move could have left a retained copy.
    fleet = await provisionFleet({ tiers: ["standard", "premium"], tenants: dir, pgVersion: 15 });
    writeStackFile(fleet);
    keyEnv = { PGTENANTS_DATA_KEY_ACME: fleet.outputs.credentials.acme.dataKey };
    for (const id of ["acme", "initech"]) {
      const rw = await login(id);
      await rw.query(
        "INSERT INTO app.customers (email, name) SELECT 'c' || g || '@x.test', 'C' || g FROM generate_series(1, 12) g",
      );
      await rw.query("INSERT INTO app.events (kind) SELECT 'e' || g FROM generate_series(1, 7) g");
      await rw.end();
    }
    // A large object of acme's own (its tier would grant the capability): dumped, restored as acme's.
    await q("GRANT pgtenants_large_objects TO tenant_acme_rw");
    const rw = await login("acme");
    await rw.query("SELECT lo_from_bytea(0, 'signed contract'::bytea)");
    await rw.end();
  });
  afterAll(async () => {
    await fleet?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("refuses a tenant that is not offboarded, and one whose offboarding is not applied yet", async () => {
    const io = captureIo(fleet, keyEnv);
    assert.equal(await offboard(["acme", ...S], io), 1);
    assert.match(
      io.errors[0],
      /^error: tenant acme is not offboarded: set "state: offboarded" and "offboardedAt: <YYYY-MM-DD>" in .*acme\.yaml, run pulumi up/,
    );

    fs.writeFileSync(
      path.join(dir, "acme.yaml"),
      yaml("acme", "state: offboarded\noffboardedAt: 2026-11-01\n"),
    );
    const pending = captureIo(fleet, keyEnv);
    assert.equal(await offboard(["acme", ...S], pending), 1);
    assert.deepEqual(pending.errors, [
      "error: the offboarding of tenant acme is not applied yet (tenant_acme still holds CONNECT on tenant_acme, role tenant_acme_ro can still log in, role tenant_acme_rw can still log in): run pulumi up first; nothing was changed",
    ]);
  });

  it("applied by the program: logins NOLOGIN, CONNECT revoked, no pg_hba line; data and key kept; the audit agrees", async () => {
    lingering = await login("acme");
    lingering.on("error", () => undefined);
    await fleet.apply();
    // NOLOGIN and the revoked CONNECT stop new sessions only: the one opened before still writes.
    await lingering.query(
      "INSERT INTO app.events (kind) SELECT 'after-offboarding' FROM generate_series(1, 3)",
    );
    assert.deepEqual(await q(CLOSED, [], "tenant_acme"), [
      { group_connect: false, public_connect: false, datallowconn: true, customers: 12 },
    ]);
    assert.deepEqual(
      await q(
        "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname ~ '^tenant_acme' ORDER BY 1",
      ),
      [
        { rolname: "tenant_acme", rolcanlogin: false },
        { rolname: "tenant_acme_owner", rolcanlogin: false },
        { rolname: "tenant_acme_ro", rolcanlogin: false },
        { rolname: "tenant_acme_rw", rolcanlogin: false },
      ],
    );
    assert.ok(!fleet.outputs.pgHba.standard.includes("tenant_acme"));
    assert.equal(fleet.outputs.credentials.acme.dataKey, keyEnv.PGTENANTS_DATA_KEY_ACME);
    await assert.rejects(
      login("acme"),
      /pg_hba.conf rejects connection for host "127.0.0.1", user "tenant_acme_rw", database "tenant_acme"/,
    );
    const rw = await login("initech");
    await rw.query("SELECT 1");
    await rw.end();

    const io = captureIo(fleet);
    // The audit fails on the session that outlived the offboarding (the final dump ends it).
    assert.equal(await audit([...S, "--format", "json"], io), 1);
    const report = JSON.parse(io.lines.join("\n")) as AuditReport;
    assert.deepEqual(
      report.findings
        .filter((f) => f.severity === "violation")
        .map((f) => `${f.tenant}:${f.invariant}`),
      ["acme:offboarded-session"],
    );
  });

  it("refuses the final dump while a session is open and the provisioning role may not end it, naming the fix", async () => {
    await q("REVOKE pg_signal_backend FROM pgtenants_provisioner");
    try {
      const io = captureIo(fleet, keyEnv);
      assert.equal(await offboard(["acme", ...S], io), 1);
      assert.equal(io.errors.length, 1);
      assert.match(
        io.errors[0],
        /^error: 1 session\(s\) of tenant acme are still open on cluster standard \(pids \d+\) and pgtenants_provisioner may not end them: it needs pg_signal_backend \(as a superuser: GRANT pg_signal_backend TO pgtenants_provisioner; the cluster bootstrap grants it\), then run npm run offboard -- acme again; nothing was written$/,
      );
      assert.equal(fs.existsSync(path.join(fleet.root, "backups")), false);
    } finally {
      await q("GRANT pg_signal_backend TO pgtenants_provisioner");
    }
  });

  it("refuses a final dump without the tenant's data key, touching nothing", async () => {
    const io = captureIo(fleet, { PGTENANTS_DATA_KEY_ACME: undefined });
    assert.equal(await offboard(["acme", ...S], io), 1);
    assert.deepEqual(io.errors, [
      "error: no data key for tenant acme: set PGTENANTS_DATA_KEY_ACME to the stack output credentials.acme.dataKey (pulumi stack output --show-secrets credentials)",
    ]);
    assert.equal(fs.existsSync(path.join(fleet.root, "backups")), false);
  });

  it("refuses to purge without a final dump, dropping nothing", async () => {
    const io = captureIo(fleet, {}, at("2026-12-01T08:00:00Z"));
    assert.equal(await offboard(["acme", ...S, "--purge", "--confirm", "acme"], io), 1);
    assert.deepEqual(io.errors, [
      "error: no final dump of tenant acme in backups/acme: write it first with npm run offboard -- acme (or name it with --final-dump <file>); nothing was changed",
    ]);
    assert.equal((await q("SELECT 1 FROM pg_database WHERE datname = 'tenant_acme'")).length, 1);
  });

  it("writes the final dump sealed with the tenant's data key and leaves the database closed", async () => {
    const io = captureIo(fleet, keyEnv, at("2026-11-02T09:30:00Z"));
    assert.equal(await offboard(["acme", ...S], io), 0, io.errors.join("\n"));
    sealed = path.join(fleet.root, "backups", "acme", "acme-final-20261102T093000Z.dump.sealed");
    assert.deepEqual(io.lines, [
      "ended 1 session(s) of tenant acme still open on cluster standard",
      `final dump of tenant acme: backups/acme/acme-final-20261102T093000Z.dump.sealed (${fs.statSync(sealed).size} bytes, AES-256-GCM with the tenant's data key)`,
      "3 table(s), 22 row(s), 3 sequence(s), 1 large object(s); manifest backups/acme/acme-final-20261102T093000Z.dump.sealed.json",
      "database tenant_acme on cluster standard stays closed (no CONNECT, logins NOLOGIN) and is retained with the key until 2026-12-01",
      "then: npm run offboard -- acme --purge --confirm acme --stack integration",
    ]);
    const bytes = fs.readFileSync(sealed);
    assert.equal(bytes.subarray(0, SEAL_MAGIC.length).toString("latin1"), SEAL_MAGIC);
    assert.equal(bytes.includes(Buffer.from("PGDMP")), false);
    assert.equal(bytes.includes(Buffer.from("c1@x.test")), false);
    assert.deepEqual(await q(CLOSED, [], "tenant_acme"), [
      { group_connect: false, public_connect: false, datallowconn: true, customers: 12 },
    ]);
    // The session that wrote after the offboarding is gone; its rows are in the dump.
    await assert.rejects(lingering.query("SELECT 1"));
    assert.deepEqual(await q("SELECT count(*)::int AS n FROM app.events", [], "tenant_acme"), [
      { n: 10 },
    ]);
  });

  it("restores the sealed final dump with the key, and refuses a wrong key", async () => {
    const wrong = captureIo(fleet, {
      PGTENANTS_DATA_KEY_ACME: Buffer.alloc(32, 7).toString("base64"),
    });
    assert.equal(await restore(["acme", sealed, ...S], wrong), 1);
    assert.deepEqual(wrong.errors, [
      `error: ${sealed} does not decrypt: wrong data key, or the file was altered or truncated`,
    ]);

    const io = captureIo(fleet, keyEnv, at("2026-11-03T10:00:00Z"));
    assert.equal(await restore(["acme", sealed, ...S], io), 0, io.errors.join("\n"));
    assert.equal(
      io.lines[1],
      "verified 3 table(s), 22 row(s), 3 sequence(s), 1 large object(s) against the backup manifest",
    );
    assert.deepEqual(
      await q(
        "SELECT pg_get_userbyid(lomowner) AS owner, convert_from(lo_get(oid), 'UTF8') AS data FROM pg_largeobject_metadata",
        [],
        "tenant_acme_restore_20261103100000",
      ),
      [{ owner: "tenant_acme_rw", data: "signed contract" }],
    );
    // The membership the restore needed for the owner was taken back.
    assert.deepEqual(
      await q(
        "SELECT count(*)::int AS n FROM pg_auth_members WHERE roleid = 'tenant_acme_rw'::regrole AND member = 'pgtenants_provisioner'::regrole",
      ),
      [{ n: 0 }],
    );
    const rows = await q(
      "SELECT count(*)::int AS n FROM app.customers",
      [],
      "tenant_acme_restore_20261103100000",
    );
    assert.deepEqual(rows, [{ n: 12 }]);
    await q("DROP DATABASE tenant_acme_restore_20261103100000");
  });

  it("refuses to purge inside the retention period or without confirmation", async () => {
    const early = captureIo(fleet, {}, at("2026-11-30T23:59:59Z"));
    assert.equal(await offboard(["acme", ...S, "--purge", "--confirm", "acme"], early), 1);
    assert.deepEqual(early.errors, [
      "error: the retention of tenant acme runs until 2026-12-01 (offboardedAt 2026-11-01 + retentionDays 30): refusing to purge before; nothing was changed",
    ]);
    const unconfirmed = captureIo(fleet, {}, at("2026-12-01T00:00:00Z"));
    assert.equal(await offboard(["acme", ...S, "--purge"], unconfirmed), 2);
    assert.deepEqual(unconfirmed.errors, [
      "error: --purge drops database tenant_acme and the roles of tenant acme on cluster standard for good: repeat the tenant id with --confirm acme",
    ]);
    assert.equal((await q("SELECT 1 FROM pg_database WHERE datname = 'tenant_acme'")).length, 1);
  });

  it("refuses to purge with another tenant's or stack's dump, an unsealed or an altered one", async () => {
    const forged = path.join(fleet.root, "forged");
    fs.mkdirSync(forged, { recursive: true });
    const manifest = JSON.parse(fs.readFileSync(`${sealed}.json`, "utf8")) as Record<
      string,
      unknown
    >;
    /** A copy of the real final dump under `name`, its manifest changed by `change`. */
    const forge = (name: string, change: Record<string, unknown>, extraByte = false): string => {
      const file = path.join(forged, name);
      fs.copyFileSync(sealed, file);
      if (extraByte) fs.appendFileSync(file, Buffer.from([0]));
      const m: Record<string, unknown> = { ...manifest, ...change };
      for (const [k, v] of Object.entries(change)) if (v === undefined) delete m[k];
      fs.writeFileSync(`${file}.json`, JSON.stringify(m));
      return path.relative(fleet.root, file);
    };
    const purgeWith = async (file: string) => {
      const io = captureIo(fleet, {}, at("2026-12-01T08:00:00Z"));
      const code = await offboard(
        ["acme", ...S, "--purge", "--confirm", "acme", "--final-dump", file],
        io,
      );
      return { code, errors: io.errors };
    };
    const cases: [string, Record<string, unknown>, boolean, string][] = [
      [
        "initech-final.dump.sealed",
        { tenant: "initech" },
        false,
        "is a dump of tenant initech, not acme",
      ],
      [
        "other-stack-final.dump.sealed",
        { stack: "production" },
        false,
        "is a dump of stack production, not integration",
      ],
      [
        "plain-final.dump.sealed",
        { sealed: undefined },
        false,
        "is not a sealed final dump (its manifest records no sealing)",
      ],
      [
        "altered-final.dump.sealed",
        {},
        true,
        "does not match the sha256 of its manifest (altered or truncated)",
      ],
    ];
    for (const [name, change, extraByte, problem] of cases) {
      const file = forge(name, change, extraByte);
      assert.deepEqual(await purgeWith(file), {
        code: 1,
        errors: [`error: ${file} ${problem}; nothing was changed`],
      });
    }
    assert.deepEqual(await purgeWith("forged/none.dump.sealed"), {
      code: 1,
      errors: [
        "error: final dump forged/none.dump.sealed or its manifest forged/none.dump.sealed.json not found; nothing was changed",
      ],
    });

    // In backups/acme/ itself: only another tenant's dump there is no final dump of acme.
    const own = path.join(fleet.root, "backups", "acme");
    const kept = `${own}.kept`;
    const foreign = forge("acme-final-20261102T093000Z.dump.sealed", { tenant: "initech" });
    fs.renameSync(own, kept);
    try {
      fs.mkdirSync(own);
      fs.renameSync(path.join(fleet.root, foreign), path.join(own, path.basename(foreign)));
      fs.renameSync(
        path.join(fleet.root, `${foreign}.json`),
        path.join(own, `${path.basename(foreign)}.json`),
      );
      const io = captureIo(fleet, {}, at("2026-12-01T08:00:00Z"));
      assert.equal(await offboard(["acme", ...S, "--purge", "--confirm", "acme"], io), 1);
      assert.deepEqual(io.errors, [
        "error: no usable final dump of tenant acme in backups/acme (backups/acme/acme-final-20261102T093000Z.dump.sealed is a dump of tenant initech, not acme): write it first with npm run offboard -- acme (or name it with --final-dump <file>); nothing was changed",
      ]);
    } finally {
      fs.rmSync(own, { recursive: true, force: true });
      fs.renameSync(kept, own);
      fs.rmSync(forged, { recursive: true, force: true });
    }
    assert.equal((await q("SELECT 1 FROM pg_database WHERE datname = 'tenant_acme'")).length, 1);
  });

  it("refuses to purge when the cluster no longer has the offboarding in force", async () => {
    const purgeNow = async () => {
      const io = captureIo(fleet, {}, at("2026-12-01T08:00:00Z"));
      return { code: await offboard(["acme", ...S, "--purge", "--confirm", "acme"], io), io };
    };
    await q("ALTER ROLE tenant_acme_rw LOGIN");
    try {
      const { code, io } = await purgeNow();
      assert.equal(code, 1);
      assert.deepEqual(io.errors, [
        "error: the offboarding of tenant acme is not applied yet (role tenant_acme_rw can still log in): run pulumi up first; nothing was changed",
      ]);
    } finally {
      await q("ALTER ROLE tenant_acme_rw NOLOGIN");
    }
    await q("GRANT CONNECT ON DATABASE tenant_acme TO tenant_acme");
    try {
      const { code, io } = await purgeNow();
      assert.equal(code, 1);
      assert.deepEqual(io.errors, [
        "error: the offboarding of tenant acme is not applied yet (tenant_acme still holds CONNECT on tenant_acme): run pulumi up first; nothing was changed",
      ]);
    } finally {
      await q("REVOKE CONNECT ON DATABASE tenant_acme FROM tenant_acme");
    }
    assert.deepEqual(await q(CLOSED, [], "tenant_acme"), [
      { group_connect: false, public_connect: false, datallowconn: true, customers: 12 },
    ]);
    assert.deepEqual(
      await q("SELECT count(*)::int AS n FROM pg_roles WHERE rolname ~ '^tenant_acme'"),
      [{ n: 4 }],
    );
  });

  it("refuses to purge a database that changed after its final dump", async () => {
    await q("UPDATE app.customers SET name = 'changed' WHERE id = 1", [], "tenant_acme");
    try {
      const io = captureIo(fleet, {}, at("2026-12-01T08:00:00Z"));
      assert.equal(await offboard(["acme", ...S, "--purge", "--confirm", "acme"], io), 1);
      assert.deepEqual(io.errors, [
        "error: database tenant_acme changed after its final dump (table app.customers has the same 12 row count but different content in database tenant_acme now): write a new final dump with npm run offboard -- acme before purging; nothing was changed",
      ]);
    } finally {
      await q("UPDATE app.customers SET name = 'C1' WHERE id = 1", [], "tenant_acme");
    }
  });

  it("writes backup folders and final dumps readable by their owner only", () => {
    assert.equal(fs.statSync(path.dirname(sealed)).mode & 0o777, 0o700);
    assert.equal(fs.statSync(sealed).mode & 0o777, 0o600);
    assert.equal(fs.statSync(`${sealed}.json`).mode & 0o777, 0o600);
  });

  it("purges after the retention period: only that tenant's database and roles go, the copy a move retained included", async () => {
    const initechBefore = await q("SELECT * FROM app.customers ORDER BY id", [], "tenant_initech");
    // The source a tier move from premium would have retained: closed, owned by the tenant's
    // owner role, the provisioning role a member of it (as the program's GrantRole makes it).
    const premium = await fleet.clusters.premium.superuserClient();
    try {
      for (const sql of [
        "CREATE ROLE tenant_acme_owner NOLOGIN",
        "CREATE ROLE tenant_acme NOLOGIN",
        "CREATE ROLE tenant_acme_rw NOLOGIN IN ROLE tenant_acme",
        "CREATE ROLE tenant_acme_ro NOLOGIN IN ROLE tenant_acme",
        `GRANT tenant_acme_owner TO ${PROVISIONER}`,
        "CREATE DATABASE tenant_acme OWNER tenant_acme_owner",
        "ALTER DATABASE tenant_acme ALLOW_CONNECTIONS false",
      ])
        await premium.query(sql);
    } finally {
      await premium.end();
    }
    const io = captureIo(fleet, {}, at("2026-12-01T08:00:00Z"));
    assert.equal(
      await offboard(["acme", ...S, "--purge", "--confirm", "acme"], io),
      0,
      io.errors.join("\n"),
    );
    assert.deepEqual(io.lines.slice(0, 4), [
      "dropped database tenant_acme on cluster standard",
      "dropped roles tenant_acme_rw, tenant_acme_ro, tenant_acme, tenant_acme_owner on cluster standard",
      "dropped database tenant_acme on cluster premium (the source a tier move retained)",
      "dropped roles tenant_acme_rw, tenant_acme_ro, tenant_acme, tenant_acme_owner on cluster premium",
    ]);
    assert.ok(
      io.lines.includes(
        "       pulumi state delete --stack integration --force --target-dependents 'urn:pulumi:integration::pg-tenants::pg-tenants:index:Tenant::acme'",
      ),
    );
    assert.deepEqual(
      await q("SELECT datname FROM pg_database WHERE datname LIKE 'tenant_%' ORDER BY 1"),
      [{ datname: "tenant_initech" }],
    );
    assert.deepEqual(await q("SELECT rolname FROM pg_roles WHERE rolname LIKE 'tenant_acme%'"), []);
    const after = await fleet.clusters.premium.superuserClient();
    try {
      const left = await after.query(
        "SELECT datname AS name FROM pg_database WHERE datname LIKE 'tenant_acme%' UNION ALL SELECT rolname FROM pg_roles WHERE rolname LIKE 'tenant_acme%'",
      );
      assert.deepEqual(left.rows, []);
    } finally {
      await after.end();
    }
    assert.deepEqual(
      await q("SELECT * FROM app.customers ORDER BY id", [], "tenant_initech"),
      initechBefore,
    );
    const rw = await login("initech");
    await rw.query("INSERT INTO app.events (kind) VALUES ('still-here')");
    await rw.end();
  });
});
