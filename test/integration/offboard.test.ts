import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { Client } from "pg";
import type { AuditReport } from "../../infra/audit";
import { main as audit } from "../../tools/audit";
import { main as offboard } from "../../tools/offboard";
import { main as restore } from "../../tools/restore";
import { SEAL_MAGIC } from "../../tools/lib/seal";
import { captureIo, writeStackFile } from "../support/dayTwo";
import { connectAs, Fleet, FLEET_STACK, provisionFleet } from "../support/fleet";

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

  const q = async (sql: string, params: unknown[] = [], database = "postgres") => {
    const c = await fleet.clusters.standard.superuserClient(database);
    try {
      return (await c.query(sql, params)).rows;
    } finally {
      await c.end();
    }
  };
  const login = (id: string): Promise<Client> => connectAs(fleet.outputs.credentials[id].rw);

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-offboard-tenants-"));
    fs.writeFileSync(path.join(dir, "acme.yaml"), yaml("acme"));
    fs.writeFileSync(path.join(dir, "initech.yaml"), yaml("initech"));
    fleet = await provisionFleet({ tiers: ["standard"], tenants: dir, pgVersion: 15 });
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
  });
  after(async () => {
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
    await fleet.apply();
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
    assert.equal(await audit([...S, "--format", "json"], io), 0);
    const report = JSON.parse(io.lines.join("\n")) as AuditReport;
    assert.deepEqual(
      report.findings.filter((f) => f.severity === "violation"),
      [],
    );
  });

  it("refuses a final dump without the tenant's data key, touching nothing", async () => {
    const io = captureIo(fleet, { PGTENANTS_DATA_KEY_ACME: undefined });
    assert.equal(await offboard(["acme", ...S], io), 1);
    assert.deepEqual(io.errors, [
      "error: no data key for tenant acme: set PGTENANTS_DATA_KEY_ACME to the stack output credentials.acme.dataKey (pulumi stack output --show-secrets credentials)",
    ]);
    assert.equal(fs.existsSync(path.join(fleet.root, "backups")), false);
  });

  it("writes the final dump sealed with the tenant's data key and leaves the database closed", async () => {
    const io = captureIo(fleet, keyEnv, at("2026-11-02T09:30:00Z"));
    assert.equal(await offboard(["acme", ...S], io), 0, io.errors.join("\n"));
    sealed = path.join(fleet.root, "backups", "acme", "acme-final-20261102T093000Z.dump.sealed");
    assert.deepEqual(io.lines, [
      `final dump of tenant acme: backups/acme/acme-final-20261102T093000Z.dump.sealed (${fs.statSync(sealed).size} bytes, AES-256-GCM with the tenant's data key)`,
      "3 table(s), 19 row(s); manifest backups/acme/acme-final-20261102T093000Z.dump.sealed.json",
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
    assert.equal(io.lines[1], "verified 3 table(s), 19 row(s) against the backup manifest");
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
      "--purge drops database tenant_acme and the roles of tenant acme on cluster standard for good: repeat the tenant id with --confirm acme",
    ]);
    assert.equal((await q("SELECT 1 FROM pg_database WHERE datname = 'tenant_acme'")).length, 1);
  });

  it("purges after the retention period: only that tenant's database and roles go", async () => {
    const initechBefore = await q("SELECT * FROM app.customers ORDER BY id", [], "tenant_initech");
    const io = captureIo(fleet, {}, at("2026-12-01T08:00:00Z"));
    assert.equal(
      await offboard(["acme", ...S, "--purge", "--confirm", "acme"], io),
      0,
      io.errors.join("\n"),
    );
    assert.deepEqual(io.lines.slice(0, 2), [
      "dropped database tenant_acme on cluster standard",
      "dropped roles tenant_acme_rw, tenant_acme_ro, tenant_acme, tenant_acme_owner",
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
    assert.deepEqual(
      await q("SELECT * FROM app.customers ORDER BY id", [], "tenant_initech"),
      initechBefore,
    );
    const rw = await login("initech");
    await rw.query("INSERT INTO app.events (kind) VALUES ('still-here')");
    await rw.end();
  });
});
