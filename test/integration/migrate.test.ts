import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { Client } from "pg";
import type { AuditReport } from "../../tools/audit";
import { main as audit } from "../../tools/audit";
import { main as migrate } from "../../tools/migrate";
import { MIGRATIONS_DIR } from "../../tools/lib/migrations/files";
import { captureIo, passwordEnv, writeStackFile } from "../../harness/dayTwo";
import { connectAs, Fleet, FLEET_STACK, provisionFleet } from "../../harness/fleet";
import { ROOT, tsNodeArgs } from "../../harness/tool";

/**
 * Fleet migrations on real clusters: 50 tenants over two clusters at version 1, migrated to
 * version 2 (a table, a column with a default, an index, a function), canary first then waves;
 * exact privileges from default privileges alone; a new tenant cloned from the new template
 * identical to the migrated ones; failures (canary, one tenant's data, a held lock) that leave
 * every other tenant alone; a run killed mid-wave finished by the next; drift named per object.
 */

const S = ["--stack", FLEET_STACK];
const IDS = Array.from({ length: 50 }, (_, i) => `t${String(i).padStart(2, "0")}`);
const tierOf = (id: string) => (Number(id.slice(1)) % 2 === 0 ? "standard" : "premium");
/** One connection per login keeps 25 tenants a cluster within its connection budget. */
const spec = (id: string, tier = tierOf(id)) => ({ id, tier, limits: { connectionLimit: 1 } });
const specs = () => IDS.map((id) => spec(id));

const M0002 = `-- 0002: orders. A table, a column with a default, an index and a function.
CREATE TABLE app.orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES app.customers (id),
  total_cents bigint NOT NULL CHECK (total_cents >= 0),
  placed_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE app.customers ADD COLUMN status text NOT NULL DEFAULT 'active';
CREATE INDEX orders_customer_placed_idx ON app.orders (customer_id, placed_at DESC);
CREATE FUNCTION app.customer_total(p_customer bigint) RETURNS bigint
  LANGUAGE sql STABLE
  SET search_path = pg_catalog
  AS $$ SELECT coalesce(sum(total_cents), 0)::bigint FROM app.orders WHERE customer_id = p_customer $$;
`;
/** Fails where an invoice has no note: t07 gets one. */
const M0003 = `ALTER TABLE app.invoices ALTER COLUMN note_encrypted SET NOT NULL;
CREATE TABLE app.note_marker (id int PRIMARY KEY);
`;
/** Slow enough to be killed in the middle of a wave; the marker row shows each apply. */
const M0004 = `CREATE TABLE app.applied_0004 (at timestamptz NOT NULL DEFAULT now());
INSERT INTO app.applied_0004 DEFAULT VALUES;
SELECT pg_sleep(0.3);
`;
/** Needs ACCESS EXCLUSIVE on app.customers: a tenant session's ACCESS SHARE blocks it. */
const M0005 = `ALTER TABLE app.customers ADD COLUMN nickname text;
`;

describe.each([17, 15] as const)("migrate on PostgreSQL %i", (pgVersion) => {
  let fleet: Fleet;
  const dir = () => path.join(fleet.root, MIGRATIONS_DIR);
  const addMigration = (name: string, sql: string) =>
    fs.writeFileSync(path.join(dir(), `${name}.sql`), sql);
  const setTemplate = (version: number) => {
    fleet.config.template = `customer_template_v${version}`;
    writeStackFile(fleet);
  };
  const run = async (args: string[]) => {
    const io = captureIo(fleet);
    const code = await migrate([...S, ...args], io);
    return { code, out: io.lines.join("\n"), errors: io.errors };
  };
  const runJson = async (args: string[]) => {
    const r = await run([...args, "--format", "json"]);
    assert.deepEqual(r.errors, []);
    return {
      code: r.code,
      report: JSON.parse(r.out) as {
        counts: Record<string, number>;
        stopped: boolean;
        tenants: Record<string, unknown>[];
      },
    };
  };
  const su = (id: string) => fleet.clusters[tierOf(id)].superuserClient(`tenant_${id}`);
  const inTenant = async <T>(id: string, fn: (c: Client) => Promise<T>): Promise<T> => {
    const c = await su(id);
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  const history = (id: string) =>
    inTenant(id, async (c) =>
      (
        await c.query<{ name: string }>("SELECT name FROM pgtenants_history.migrations ORDER BY id")
      ).rows.map((r) => r.name),
    );
  const versions = async () => {
    const out: Record<string, number> = {};
    for (const id of IDS) {
      out[id] = await inTenant(id, async (c) => {
        const r = await c.query<{ n: number }>(
          "SELECT CASE WHEN to_regclass('pgtenants_history.migrations') IS NULL THEN 1 ELSE (SELECT count(*)::int FROM pgtenants_history.migrations) END AS n",
        );
        return r.rows[0].n;
      });
    }
    return out;
  };
  const all = (v: number, except: Record<string, number> = {}) =>
    Object.fromEntries(IDS.map((id) => [id, except[id] ?? v]));

  beforeAll(async () => {
    fleet = await provisionFleet({
      tiers: ["standard", "premium"],
      tenants: specs(),
      pgVersion,
    });
    writeStackFile(fleet);
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it("at v1 nothing is pending: the first run records each history (0001) and changes no schema", async () => {
    const { code, report } = await runJson([]);
    assert.equal(code, 0);
    assert.deepEqual(report.counts, { current: 50 });
    assert.deepEqual(await history("t00"), ["0001_customer_template_v1"]);
    // The second run reads the ledger only.
    const again = await runJson([]);
    assert.deepEqual(
      again.report.tenants.map((t) => t.via),
      IDS.map(() => "ledger"),
    );
  });

  it("--dry-run at v2 plans 0002 for all 50 and changes nothing", async () => {
    addMigration("0002_orders", M0002);
    setTemplate(2);
    const { code, out } = await run(["--dry-run"]);
    assert.equal(code, 0);
    const rows = out.split("\n").filter((l) => /^t\d\d .* pending /.test(l));
    assert.equal(rows.length, 50);
    assert.match(rows[0], /^t00\s+standard\s+canary\s+1\s+2\s+pending\s+0002_orders$/);
    assert.match(out, /50 pending/);
    assert.deepEqual(await versions(), all(1));
    const t = await fleet.clusters.standard.superuserClient();
    assert.equal(
      (await t.query("SELECT 1 FROM pg_database WHERE datname = 'customer_template_v2'")).rowCount,
      0,
    );
    await t.end();
  });

  it("migrates all 50 to v2, canary first, then waves; rw and ro get exactly the model's rights on the new objects", async () => {
    const { code, report } = await runJson([
      "--canary",
      "t00",
      "--wave-size",
      "20",
      "--parallel",
      "4",
    ]);
    assert.equal(code, 0);
    assert.deepEqual(report.counts, { migrated: 50 });
    assert.deepEqual(
      report.tenants.map((t) => t.wave),
      IDS.map((id, i) => (id === "t00" ? "canary" : i <= 20 ? 1 : i <= 40 ? 2 : 3)),
    );
    assert.deepEqual(await versions(), all(2));
    assert.deepEqual(await history("t31"), ["0001_customer_template_v1", "0002_orders"]);
    await inTenant("t31", async (c) => {
      const owners = await c.query(
        `SELECT c.relname, pg_get_userbyid(c.relowner) AS owner FROM pg_class c
          WHERE c.relnamespace = 'app'::regnamespace AND c.relname IN ('orders', 'orders_id_seq', 'orders_customer_placed_idx') ORDER BY 1`,
      );
      assert.deepEqual(
        owners.rows.map((r) => `${r.relname}:${r.owner}`),
        [
          "orders:tenant_t31_owner",
          "orders_customer_placed_idx:tenant_t31_owner",
          "orders_id_seq:tenant_t31_owner",
        ],
      );
      const acl = await c.query<{ grantee: string; privilege: string; obj: string }>(
        `SELECT c.relname AS obj, pg_get_userbyid(a.grantee) AS grantee, a.privilege_type AS privilege
           FROM pg_class c, aclexplode(c.relacl) a
          WHERE c.relnamespace = 'app'::regnamespace AND c.relname IN ('orders', 'orders_id_seq') AND a.grantee <> c.relowner
          ORDER BY 1, 2, 3`,
      );
      assert.deepEqual(
        acl.rows.map((r) => `${r.obj} ${r.grantee} ${r.privilege}`),
        [
          "orders tenant_t31_ro SELECT",
          "orders tenant_t31_rw DELETE",
          "orders tenant_t31_rw INSERT",
          "orders tenant_t31_rw SELECT",
          "orders tenant_t31_rw UPDATE",
          "orders_id_seq tenant_t31_ro SELECT",
          "orders_id_seq tenant_t31_rw SELECT",
          "orders_id_seq tenant_t31_rw UPDATE",
          "orders_id_seq tenant_t31_rw USAGE",
        ],
      );
      const historyAcl = await c.query(
        "SELECT nspacl IS NULL AS none, pg_get_userbyid(nspowner) AS owner FROM pg_namespace WHERE nspname = 'pgtenants_history'",
      );
      assert.deepEqual(historyAcl.rows, [{ none: true, owner: "pgtenants_provisioner" }]);
    });
    const rw = await connectAs(fleet.outputs.credentials.t31.rw);
    const ro = await connectAs(fleet.outputs.credentials.t31.ro);
    try {
      await rw.query("INSERT INTO app.customers (email, name) VALUES ('a@example.com', 'A')");
      const status = await rw.query("SELECT status FROM app.customers");
      assert.deepEqual(status.rows, [{ status: "active" }]);
      await rw.query(
        "INSERT INTO app.orders (customer_id, total_cents) SELECT id, 250 FROM app.customers",
      );
      assert.deepEqual(
        (await rw.query("SELECT app.customer_total(id) AS t FROM app.customers")).rows,
        [{ t: "250" }],
      );
      assert.deepEqual((await ro.query("SELECT total_cents FROM app.orders")).rows, [
        { total_cents: "250" },
      ]);
      for (const [who, c, sql] of [
        ["rw", rw, "TRUNCATE app.orders"],
        ["rw", rw, "DROP FUNCTION app.customer_total(bigint)"],
        ["rw", rw, "ALTER TABLE app.orders ADD COLUMN x int"],
        ["rw", rw, "CREATE TABLE app.mine (id int)"],
        ["rw", rw, "SELECT * FROM pgtenants_history.migrations"],
        ["ro", ro, "INSERT INTO app.orders (customer_id, total_cents) VALUES (1, 1)"],
        ["ro", ro, "UPDATE app.orders SET total_cents = 0"],
        ["ro", ro, "SELECT nextval('app.orders_id_seq')"],
        ["ro", ro, "SELECT * FROM pgtenants_history.migrations"],
      ] as const) {
        await assert.rejects(c.query(sql), { code: "42501" }, `${who}: ${sql}`);
      }
    } finally {
      await rw.end();
      await ro.end();
    }
  });

  it("the audit is clean, and a tenant created from customer_template_v2 has the migrated tenants' schema", async () => {
    await fleet.apply([...specs(), spec("fresh", "standard")]);
    const c = await fleet.clusters.standard.superuserClient("tenant_fresh");
    const r = await c.query(
      "SELECT name, applied_in FROM pgtenants_history.migrations ORDER BY id",
    );
    const origin = await c.query("SELECT template, version FROM pgtenants_history.origin");
    await c.end();
    assert.deepEqual(r.rows, [
      { name: "0001_customer_template_v1", applied_in: "customer_template_v2" },
      { name: "0002_orders", applied_in: "customer_template_v2" },
    ]);
    assert.deepEqual(origin.rows, [{ template: "customer_template_v2", version: 2 }]);
    const check = await runJson(["--check"]);
    assert.equal(check.code, 0);
    assert.deepEqual(check.report.counts, { clean: 51 });
    const io = captureIo(fleet);
    const code = await audit([...S, "--format", "json"], io);
    const report = JSON.parse(io.lines.join("\n")) as AuditReport;
    assert.deepEqual(
      report.findings.filter((f) => f.severity === "violation"),
      [],
    );
    assert.equal(code, 0);
    assert.deepEqual(
      report.findings
        .filter((f) => f.invariant === "template-version")
        .map((f) => `${f.tier} ${f.message}`),
      [
        "premium template customer_template_v1 is superseded by customer_template_v2: drop it once no stack names it",
        "standard template customer_template_v1 is superseded by customer_template_v2: drop it once no stack names it",
      ],
    );
  });

  it("a canary failure stops the run with no other tenant changed", async () => {
    await inTenant("t07", (c) =>
      c.query(
        "INSERT INTO app.customers (email, name) VALUES ('x@example.com', 'X'); INSERT INTO app.invoices (customer_id, amount_cents) SELECT id, 1 FROM app.customers",
      ),
    );
    addMigration("0003_note_required", M0003);
    setTemplate(3);
    const { code, report } = await runJson(["--canary", "t07"]);
    assert.equal(code, 1);
    assert.equal(report.stopped, true);
    assert.deepEqual(report.counts, { failed: 1, "not-run": 50 });
    const failed = report.tenants.find((t) => t.id === "t07")!;
    assert.equal(failed.code, "23502");
    assert.equal(failed.migration, "0003_note_required");
    assert.equal(failed.version, 2);
    assert.deepEqual(await versions(), all(2));
  });

  it("a migration that fails on one tenant's data rolls that tenant back alone", async () => {
    const { code, report } = await runJson([
      "--canary",
      "t00",
      "--wave-size",
      "25",
      "--continue-on-error",
    ]);
    assert.equal(code, 1);
    assert.deepEqual(report.counts, { migrated: 50, failed: 1 });
    assert.deepEqual(await versions(), all(3, { t07: 2 }));
    assert.equal(
      await inTenant(
        "t07",
        async (c) => (await c.query("SELECT to_regclass('app.note_marker') AS r")).rows[0].r,
      ),
      null,
    );
    await inTenant("t07", (c) => c.query("UPDATE app.invoices SET note_encrypted = '\\x00'"));
    const again = await runJson([]);
    assert.equal(again.code, 0);
    assert.deepEqual(again.report.counts, { current: 50, migrated: 1 });
  });

  it("a run killed in the middle of a wave is finished by the next, each tenant migrated exactly once", async () => {
    addMigration("0004_slow", M0004);
    setTemplate(4);
    const child = spawn(
      process.execPath,
      tsNodeArgs(path.join(ROOT, "tools", "migrate.ts"), [
        ...S,
        "--canary",
        "0",
        "--parallel",
        "2",
      ]),
      {
        cwd: fleet.root,
        env: { ...process.env, ...passwordEnv(fleet) },
        stdio: "ignore",
        detached: true,
      },
    );
    const exited = new Promise((r) => child.once("exit", r));
    // The ledger (one row per tenant, written after its commit) shows progress cheaply.
    const maint = await Promise.all(
      ["standard", "premium"].map((t) => fleet.clusters[t].superuserClient()),
    );
    const ledgered = async () => {
      let n = 0;
      for (const c of maint) {
        n += (
          await c.query(
            "SELECT count(*)::int AS n FROM pgtenants_history.tenant_versions WHERE version = 4",
          )
        ).rows[0].n;
      }
      return n;
    };
    try {
      for (let i = 0; i < 1200 && (await ledgered()) < 6; i++)
        await new Promise((r) => setTimeout(r, 25));
    } finally {
      await Promise.all(maint.map((c) => c.end()));
    }
    process.kill(-child.pid!, "SIGKILL");
    await exited;
    const before = Object.values(await versions()).filter((v) => v === 4).length;
    assert.ok(before >= 3 && before < 50, `killed after ${before} of 50`);
    const { code, report } = await runJson(["--parallel", "8"]);
    assert.equal(code, 0);
    assert.equal((report.counts.migrated ?? 0) + (report.counts.current ?? 0), 51);
    assert.ok((report.counts.migrated ?? 0) <= 51 - before);
    for (const id of IDS) {
      const [marker, rows] = await inTenant(id, async (c) => [
        (await c.query("SELECT count(*)::int AS n FROM app.applied_0004")).rows[0].n,
        (
          await c.query(
            "SELECT count(*)::int AS n FROM pgtenants_history.migrations WHERE name = '0004_slow'",
          )
        ).rows[0].n,
      ]);
      assert.deepEqual([id, marker, rows], [id, 1, 1]);
    }
  });

  it("a tenant altered by hand is reported as drifted, naming each object and difference", async () => {
    await inTenant("t03", (c) =>
      c.query(
        "ALTER TABLE app.orders ALTER COLUMN total_cents DROP NOT NULL; ALTER TABLE app.customers ALTER COLUMN status SET DEFAULT 'new'; CREATE INDEX hand_idx ON app.events (kind)",
      ),
    );
    const { code, out } = await run(["--check"]);
    assert.equal(code, 1);
    const lines = out.split("\n").filter((l) => l.startsWith("t03: "));
    assert.deepEqual(lines, [
      `t03: column app.customers.status: default "'active'::text" -> "'new'::text"`,
      "t03: column app.orders.total_cents: notnull true -> false",
      "t03: index app.hand_idx is not in the template",
    ]);
    assert.match(out, /50 clean, 1 drifted; 0 behind/);
    const io = captureIo(fleet);
    assert.equal(await audit([...S, "--format", "json"], io), 1);
    const report = JSON.parse(io.lines.join("\n")) as AuditReport;
    assert.deepEqual(
      report.findings
        .filter((f) => f.severity === "violation")
        .map((f) => `${f.tenant} ${f.invariant}: ${f.message}`),
      [
        "t03 schema-drift: database tenant_t03 differs from template version 4: column app.customers.status: default \"'active'::text\" -> \"'new'::text\"",
        "t03 schema-drift: database tenant_t03 differs from template version 4: column app.orders.total_cents: notnull true -> false",
        "t03 schema-drift: database tenant_t03 differs from template version 4: index app.hand_idx is not in the template",
      ],
    );
    await inTenant("t03", (c) =>
      c.query(
        "ALTER TABLE app.orders ALTER COLUMN total_cents SET NOT NULL; ALTER TABLE app.customers ALTER COLUMN status SET DEFAULT 'active'; DROP INDEX app.hand_idx",
      ),
    );
  });

  it("a tenant session holding a lock makes its migration time out and be reported, not hang", async () => {
    addMigration("0005_nickname", M0005);
    setTemplate(5);
    const holder = await connectAs(fleet.outputs.credentials.t10.ro);
    try {
      await holder.query("BEGIN; LOCK TABLE app.customers IN ACCESS SHARE MODE");
      const started = Date.now();
      const { code, report } = await runJson([
        "--canary",
        "t00",
        "--lock-timeout",
        "1000",
        "--continue-on-error",
      ]);
      assert.ok(Date.now() - started < 60_000);
      assert.equal(code, 1);
      assert.deepEqual(report.counts, { migrated: 50, failed: 1 });
      const t10 = report.tenants.find((t) => t.id === "t10")!;
      assert.equal(t10.code, "55P03");
      assert.equal(t10.version, 4);
      assert.match(
        String(t10.message),
        /held a lock the migration needs for more than 1000 ms; nothing of it was applied/,
      );
    } finally {
      await holder.query("ROLLBACK").catch(() => undefined);
      await holder.end();
    }
    const again = await runJson([]);
    assert.deepEqual(again.report.counts, { current: 50, migrated: 1 });
    assert.deepEqual(await versions(), all(5));
  });
});
