import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { Client } from "pg";
import type { AuditReport } from "../../tools/audit";
import { main as audit } from "../../tools/audit";
import { main as move } from "../../tools/move";
import { captureIo, writeStackFile } from "../../harness/dayTwo";
import { connectAs, Fleet, FLEET_STACK, PROVISIONER, provisionFleet } from "../../harness/fleet";

/**
 * A declared tier move between two real clusters (PostgreSQL 15, so Debian's pg_dump 15 can
 * read them): the program provisions the target, the move copies every row, verifies, closes
 * the source without dropping it and switches the tenant file; the tenant's credentials then
 * work on the new cluster and no other tenant changed.
 */

const S = ["--stack", FLEET_STACK];
const HEADER = "# yaml-language-server: $schema=./tenant.schema.json\n";
const tenantYaml = (id: string, tier: string, extra = "") =>
  `${HEADER}id: ${id}\ndisplayName: Tenant ${id}\ntier: ${tier}\nstate: active\n${extra}`;

describe("npm run move between two embedded clusters", () => {
  let fleet: Fleet;
  let dir: string;
  let otherBefore: unknown;

  const client = async (tier: string, database: string) =>
    fleet.clusters[tier].superuserClient(database);
  const login = (id: string, kind: "rw" | "ro" = "rw"): Promise<Client> =>
    connectAs(fleet.outputs.credentials[id][kind]);
  const dumpRows = async (c: Client) => {
    const out: Record<string, unknown[]> = {};
    for (const t of ["customers", "invoices", "events"]) {
      out[t] = (await c.query(`SELECT * FROM app.${t} ORDER BY id`)).rows;
    }
    return out;
  };
  const rowsOn = async (tier: string, database: string) => {
    const c = await client(tier, database);
    try {
      return await dumpRows(c);
    } finally {
      await c.end();
    }
  };
  const EMPTY = { customers: [], invoices: [], events: [] };
  /** After an abandoned move: the target holds nothing and acme's login still reads its 40 customers. */
  const assertTargetEmptySourceServing = async () => {
    assert.deepEqual(await rowsOn("premium", "tenant_acme"), EMPTY);
    const rw = await login("acme");
    assert.equal((await rw.query("SELECT count(*)::int AS n FROM app.customers")).rows[0].n, 40);
    await rw.end();
  };
  /** Everything about the other tenants a move must leave alone: rows, roles, databases. */
  const otherTenants = async () => {
    const state: Record<string, unknown> = {
      initech: await rowsOn("standard", "tenant_initech"),
      globex: await rowsOn("premium", "tenant_globex"),
    };
    for (const tier of ["standard", "premium"]) {
      const c = await client(tier, "postgres");
      try {
        state[`${tier}-roles`] = (
          await c.query(
            "SELECT r.rolname, r.rolcanlogin, r.rolconnlimit, r.rolconfig, a.rolpassword FROM pg_roles r JOIN pg_authid a ON a.oid = r.oid WHERE r.rolname ~ '^tenant_(initech|globex)' ORDER BY 1",
          )
        ).rows;
        state[`${tier}-dbs`] = (
          await c.query(
            "SELECT datname, datallowconn, datconnlimit, datacl::text FROM pg_database WHERE datname ~ '^tenant_(initech|globex)' ORDER BY 1",
          )
        ).rows;
      } finally {
        await c.end();
      }
    }
    return state;
  };
  const auditReport = async () => {
    const io = captureIo(fleet);
    const code = await audit([...S, "--format", "json"], io);
    return { code, report: JSON.parse(io.lines.join("\n")) as AuditReport };
  };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-move-tenants-"));
    fs.writeFileSync(path.join(dir, "acme.yaml"), tenantYaml("acme", "standard"));
    fs.writeFileSync(path.join(dir, "initech.yaml"), tenantYaml("initech", "standard"));
    fs.writeFileSync(path.join(dir, "globex.yaml"), tenantYaml("globex", "premium"));
    fleet = await provisionFleet({ tiers: ["standard", "premium"], tenants: dir, pgVersion: 15 });
    writeStackFile(fleet);
    for (const id of ["acme", "initech", "globex"]) {
      const rw = await login(id);
      try {
        const n = id === "acme" ? 40 : 3;
        await rw.query(
          "INSERT INTO app.customers (email, name) SELECT 'c' || g || '@' || $1::text || '.test', 'Customer ' || g FROM generate_series(1, $2::int) g",
          [id, n],
        );
        await rw.query(
          `INSERT INTO app.invoices (customer_id, amount_cents, note_encrypted)
           SELECT 1 + g % $1::int, g * 100, pgp_sym_encrypt('note ' || g, $2) FROM generate_series(1, $1::int * 3) g`,
          [n, fleet.outputs.credentials[id].dataKey],
        );
        await rw.query(
          `INSERT INTO app.events (kind, payload) SELECT 'k' || g % 4, jsonb_build_object('n', g, 'tenant', $1::text) FROM generate_series(1, 25) g`,
          [id],
        );
        // Gaps in the identity sequence must travel too: the next id continues after them.
        await rw.query("DELETE FROM app.events WHERE id IN (3, 7)");
      } finally {
        await rw.end();
      }
    }
  });
  afterAll(async () => {
    await fleet?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("refuses a tenant without a declared move and an unknown tenant", async () => {
    const io = captureIo(fleet);
    assert.equal(await move(["acme", ...S], io), 1);
    assert.deepEqual(io.errors, [
      `error: tenant acme declares no move: add "move: { to: <tier> }" to ${path.relative(fleet.root, path.join(dir, "acme.yaml"))}, run pulumi up (it provisions the target database), then npm run move -- acme`,
    ]);
    const unknown = captureIo(fleet);
    assert.equal(await move(["umbrella", ...S], unknown), 1);
    assert.match(unknown.errors[0], /^error: unknown tenant "umbrella"/);
  });

  it("with move declared, the program provisions an empty target beside the source; the audit accepts both", async () => {
    fs.writeFileSync(
      path.join(dir, "acme.yaml"),
      tenantYaml("acme", "standard", "move:\n  to: premium\n"),
    );
    otherBefore = await otherTenants();
    await fleet.apply();
    const target = await rowsOn("premium", "tenant_acme");
    assert.deepEqual(target, { customers: [], invoices: [], events: [] });
    assert.equal((await rowsOn("standard", "tenant_acme")).customers.length, 40);
    // Until the move runs, the credentials still lead to the source.
    assert.equal(fleet.outputs.credentials.acme.rw.port, fleet.clusters.standard.port);
    assert.ok(
      fleet.outputs.pgHba.premium.includes(
        "host tenant_acme +tenant_acme 127.0.0.1/32 scram-sha-256",
      ),
    );
    const { code, report } = await auditReport();
    assert.deepEqual(
      report.findings.filter((f) => f.severity === "violation"),
      [],
    );
    assert.equal(code, 0);
  });

  it("refuses while a tenant session stays connected, and leaves the source serving", async () => {
    // Clusters the bootstrap prepares give the provisioning role pg_signal_backend (it ends the
    // sessions itself); a managed cluster may not: take it away for this test.
    const su = await fleet.clusters.standard.superuserClient();
    await su.query(`REVOKE pg_signal_backend FROM ${PROVISIONER}`);
    const session = await login("acme");
    try {
      const io = captureIo(fleet);
      assert.equal(await move(["acme", ...S, "--wait", "1"], io), 1);
      assert.deepEqual(io.errors, [
        "error: 1 session(s) of tenant_acme_rw/tenant_acme_ro are still connected to tenant_acme after 1s and could not be ended (the provisioning role needs pg_signal_backend for that): stop the application's connections to tenant acme, or grant pg_signal_backend to the provisioning role, and run the move again",
      ]);
      await session.query("INSERT INTO app.events (kind) VALUES ('still-serving')");
    } finally {
      await session.end();
      await su.query(`GRANT pg_signal_backend TO ${PROVISIONER}`);
      await su.end();
    }
    const fresh = await login("acme");
    await fresh.query("DELETE FROM app.events WHERE kind = 'still-serving'");
    await fresh.end();
    assert.deepEqual(await rowsOn("premium", "tenant_acme"), EMPTY);
  });

  it("refuses a target that is not empty, changing nothing", async () => {
    const c = await client("premium", "tenant_acme");
    await c.query("INSERT INTO app.events (kind) VALUES ('stray')");
    try {
      const io = captureIo(fleet);
      assert.equal(await move(["acme", ...S], io), 1);
      assert.deepEqual(io.errors, [
        "error: the target database tenant_acme on cluster premium is not empty (app.events: 1 row(s)): a move only fills the empty database the program provisioned; nothing was changed. If it holds a copy from an earlier move that was given back, empty it as the provisioning role on cluster premium (TRUNCATE its tables) after checking nobody wrote there",
      ]);
    } finally {
      await c.query("TRUNCATE app.events");
      await c.end();
    }
    const rw = await login("acme");
    await rw.query("SELECT 1");
    await rw.end();
  });

  it("refuses while another move of the tenant holds its lock, touching nothing", async () => {
    const holder = await client("standard", "postgres");
    try {
      await holder.query("SELECT pg_advisory_lock(hashtext('pg-tenants:move:tenant_acme'))");
      const io = captureIo(fleet);
      assert.equal(await move(["acme", ...S], io), 1);
      assert.deepEqual(io.errors, [
        "error: another move of tenant acme is running (advisory lock pg-tenants:move:tenant_acme is held on cluster standard): wait for it to end; nothing was changed",
      ]);
      assert.deepEqual(io.lines, []);
    } finally {
      await holder.end();
    }
    const rw = await login("acme");
    await rw.query("SELECT 1");
    await rw.end();
  });

  it("a freeze that fails half-way changes nothing: NOLOGIN and the journal commit together", async () => {
    const su = await client("standard", "postgres");
    // The provisioning role may not alter a superuser: the second ALTER ROLE ... NOLOGIN fails.
    await su.query("ALTER ROLE tenant_acme_ro SUPERUSER");
    try {
      const io = captureIo(fleet);
      assert.equal(await move(["acme", ...S], io), 1);
      assert.deepEqual(io.errors, [
        'error: freezing the source failed: ALTER ROLE "tenant_acme_ro" NOLOGIN: must be superuser to alter superuser roles or change superuser attribute; nothing was changed, the source serves as before',
      ]);
      const roles = await su.query(
        "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname ~ '^tenant_acme_r[wo]$' ORDER BY 1",
      );
      assert.deepEqual(roles.rows, [
        { rolname: "tenant_acme_ro", rolcanlogin: true },
        { rolname: "tenant_acme_rw", rolcanlogin: true },
      ]);
    } finally {
      await su.query("ALTER ROLE tenant_acme_ro NOSUPERUSER");
      await su.end();
    }
    const rw = await login("acme");
    await rw.query("SELECT 1");
    await rw.end();
  });

  it("abandons a copy the target rejects: the failed load left the target as it was, source logins restored", async () => {
    const c = await client("premium", "tenant_acme");
    await c.query(
      "ALTER TABLE app.invoices ADD CONSTRAINT small_amounts CHECK (amount_cents < 1000)",
    );
    try {
      const io = captureIo(fleet);
      assert.equal(await move(["acme", ...S], io), 1);
      const message = io.errors.join("\n");
      assert.match(
        message,
        /^error: copying tenant_acme into cluster "premium" failed: new row for relation "invoices" violates check constraint "small_amounts"/,
      );
      assert.ok(
        message.endsWith(
          "the move was abandoned: the target database on cluster premium was left empty (the load was rolled back), the source on cluster standard serves as before (logins restored); fix the cause and run npm run move -- acme again",
        ),
        message,
      );
    } finally {
      await c.query("ALTER TABLE app.invoices DROP CONSTRAINT small_amounts");
      await c.end();
    }
    await assertTargetEmptySourceServing();
  });

  it("abandons a copy that does not verify before it commits: target left empty, source logins restored", async () => {
    const c = await client("premium", "tenant_acme");
    await c.query(
      "CREATE FUNCTION public.shout() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.name := NEW.name || '!'; RETURN NEW; END$$",
    );
    await c.query(
      "CREATE TRIGGER shout BEFORE INSERT ON app.customers FOR EACH ROW EXECUTE FUNCTION public.shout()",
    );
    try {
      const io = captureIo(fleet);
      assert.equal(await move(["acme", ...S], io), 1);
      assert.deepEqual(io.errors, [
        "error: verification failed: table app.customers has the same 40 row count but different content in the target on cluster premium\nthe move was abandoned: the target database on cluster premium was left empty (the load was rolled back), the source on cluster standard serves as before (logins restored); fix the cause and run npm run move -- acme again",
      ]);
    } finally {
      await c.query("DROP TRIGGER shout ON app.customers");
      await c.query("DROP FUNCTION public.shout()");
      await c.end();
    }
    await assertTargetEmptySourceServing();
  });

  it("moves every row, keeps the source closed, rewrites the tenant file; a concurrent second move is refused", async () => {
    const source = await rowsOn("standard", "tenant_acme");
    const [first, second] = [captureIo(fleet), captureIo(fleet)];
    const codes = await Promise.all([move(["acme", ...S], first), move(["acme", ...S], second)]);
    assert.deepEqual([...codes].sort(), [0, 1], [...first.errors, ...second.errors].join("\n"));
    const [io, refused] = codes[0] === 0 ? [first, second] : [second, first];
    assert.deepEqual(refused.errors, [
      "error: another move of tenant acme is running (advisory lock pg-tenants:move:tenant_acme is held on cluster standard): wait for it to end; nothing was changed",
    ]);
    assert.deepEqual(io.errors, []);
    assert.deepEqual(io.lines.slice(0, 8), [
      "moving tenant acme: database tenant_acme from cluster standard to cluster premium",
      "froze the source: tenant_acme_rw, tenant_acme_ro set NOLOGIN, no session left",
      "copied and verified 3 table(s), 183 row(s), 3 sequence(s), 0 large object(s) (row counts, content checksums, sequence values and large objects match)",
      "  app.customers: 40 row(s)",
      "  app.events: 23 row(s)",
      "  app.invoices: 120 row(s)",
      "closed the source: database tenant_acme on cluster standard kept with ALLOW_CONNECTIONS false",
      `rewrote ${path.relative(fleet.root, path.join(dir, "acme.yaml"))}: tier: premium, move removed`,
    ]);
    assert.ok(
      io.lines.includes(
        "       pulumi state delete --stack integration --force --target-dependents 'urn:pulumi:integration::pg-tenants::pg-tenants:index:Tenant$pg-tenants:index:TenantPlacement::acme@standard'",
      ),
    );

    assert.deepEqual(await rowsOn("premium", "tenant_acme"), source);
    assert.equal(
      fs.readFileSync(path.join(dir, "acme.yaml"), "utf8"),
      tenantYaml("acme", "premium"),
    );

    const c = await client("standard", "postgres");
    try {
      const db = await c.query(
        "SELECT datallowconn FROM pg_database WHERE datname = 'tenant_acme'",
      );
      assert.deepEqual(db.rows, [{ datallowconn: false }]);
      const roles = await c.query(
        "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname ~ '^tenant_acme_r[wo]$' ORDER BY 1",
      );
      assert.deepEqual(roles.rows, [
        { rolname: "tenant_acme_ro", rolcanlogin: false },
        { rolname: "tenant_acme_rw", rolcanlogin: false },
      ]);
    } finally {
      await c.end();
    }
  });

  it("after the program runs again the tenant's credentials lead to the new cluster, and nothing else changed", async () => {
    await fleet.apply();
    assert.equal(fleet.outputs.credentials.acme.rw.port, fleet.clusters.premium.port);
    assert.equal(fleet.outputs.tenants.acme.cluster, "premium");
    assert.ok(!fleet.outputs.pgHba.standard.includes("tenant_acme"));
    const rw = await login("acme");
    try {
      const next = await rw.query(
        "INSERT INTO app.events (kind) VALUES ('after-move') RETURNING id",
      );
      // 25 seeded, 26 taken (and deleted) by the session during the refused move: the sequence moved too.
      assert.equal(next.rows[0].id, "27");
      const notes = await rw.query(
        "SELECT pgp_sym_decrypt(note_encrypted, $1) AS n FROM app.invoices WHERE id = 7",
        [fleet.outputs.credentials.acme.dataKey],
      );
      assert.deepEqual(notes.rows, [{ n: "note 7" }]);
    } finally {
      await rw.end();
    }
    const ro = await login("acme", "ro");
    try {
      assert.equal((await ro.query("SELECT count(*)::int AS n FROM app.customers")).rows[0].n, 40);
      await assert.rejects(
        ro.query("DELETE FROM app.customers"),
        /permission denied for table customers/,
      );
    } finally {
      await ro.end();
    }
    assert.deepEqual(await otherTenants(), otherBefore);

    const { code, report } = await auditReport();
    assert.deepEqual(
      report.findings.filter((f) => f.severity === "violation"),
      [],
    );
    assert.equal(code, 0);
    assert.ok(
      report.findings.some(
        (f) =>
          f.severity === "notice" &&
          f.tier === "standard" &&
          f.tenant === "acme" &&
          f.invariant === "retained-database" &&
          f.message ===
            "database tenant_acme is retained here (connections disallowed) after the tenant moved to premium; remove it when no longer needed",
      ),
      JSON.stringify(report.findings),
    );
  });
});
