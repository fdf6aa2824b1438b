import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { Client } from "pg";
import { main as move, FAILPOINTS, Failpoint } from "../../tools/move";
import { captureIo, passwordEnv, writeStackFile } from "../../harness/dayTwo";
import { connectAs, Fleet, FLEET_STACK, provisionFleet } from "../../harness/fleet";

/**
 * Interrupted moves (PostgreSQL 17 on both sides: the copy uses COPY, not the machine's
 * pg_dump 15). The real command line is started at each failpoint of the move and stopped there
 * with SIGINT, with SIGKILL to the command alone, or with SIGKILL to its whole process group;
 * then the same command finishes it or `--abort` gives it back, and every row, sequence value and
 * large object is accounted for. A tenant's lock on the target ends the copy with the blocker
 * named, and eight writers during a move lose no acknowledged row.
 */

const BIN = path.join(__dirname, "..", "..", "bin", "pg-tenants.js");
const S = ["--stack", FLEET_STACK];
const yaml = (tier: string, extra = "") =>
  `id: acme\ndisplayName: Acme\ntier: ${tier}\nstate: active\n${extra}`;
const DECLARED = yaml("standard", "move:\n  to: premium\n");

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

describe("a move interrupted at every step, then finished or given back", () => {
  let fleet: Fleet;
  let dir: string;
  let file: string;

  const q = async (tier: string, sql: string, database = "postgres") => {
    const c = await fleet.clusters[tier].superuserClient(database);
    try {
      return (await c.query(sql)).rows;
    } finally {
      await c.end();
    }
  };
  /** Rows of every table, sequence values and large objects (oid, owner, content) of a database. */
  const contents = async (tier: string) => {
    const c = await fleet.clusters[tier].superuserClient("tenant_acme");
    try {
      const out: Record<string, unknown> = {};
      for (const t of ["customers", "invoices", "events"])
        out[t] = (await c.query(`SELECT * FROM app.${t} ORDER BY id`)).rows;
      out.sequences = (
        await c.query(
          "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'app' ORDER BY 1",
        )
      ).rows;
      out.largeObjects = (
        await c.query(
          "SELECT oid::text, pg_get_userbyid(lomowner) AS owner, encode(lo_get(oid), 'escape') AS data FROM pg_largeobject_metadata ORDER BY oid",
        )
      ).rows;
      return out;
    } finally {
      await c.end();
    }
  };
  const EMPTY = {
    customers: [],
    invoices: [],
    events: [],
    sequences: [
      { sequencename: "customers_id_seq", last_value: null },
      { sequencename: "events_id_seq", last_value: null },
      { sequencename: "invoices_id_seq", last_value: null },
    ],
    largeObjects: [],
  };
  let seeded: Record<string, unknown>;
  const journal = async () =>
    (
      await q(
        "standard",
        "SELECT phase FROM pgtenants_history.moves WHERE database = 'tenant_acme' ORDER BY id DESC LIMIT 1",
      )
    )[0]?.phase as string | undefined;
  const logins = async () =>
    (
      await q(
        "standard",
        "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname ~ '^tenant_acme_r[wo]$' ORDER BY 1",
      )
    ).map((r) => `${r.rolname}:${r.rolcanlogin}`);
  const sourceOpen = async () =>
    (await q("standard", "SELECT datallowconn FROM pg_database WHERE datname = 'tenant_acme'"))[0]
      .datallowconn as boolean;

  /** The source serves its rows as before, the target is empty, the file still declares the move. */
  const assertGivenBack = async () => {
    assert.deepEqual(await logins(), ["tenant_acme_ro:true", "tenant_acme_rw:true"]);
    assert.equal(await sourceOpen(), true);
    assert.deepEqual(await contents("standard"), seeded);
    assert.deepEqual(await contents("premium"), EMPTY);
    assert.equal(fs.readFileSync(file, "utf8"), DECLARED);
    const rw = await connectAs(fleet.outputs.credentials.acme.rw);
    await rw.query("SELECT 1");
    await rw.end();
  };
  /** The move is done: the target holds exactly the source's rows, the source is closed. */
  const assertMoved = async () => {
    assert.deepEqual(await contents("premium"), seeded);
    assert.equal(await sourceOpen(), false);
    assert.deepEqual(await logins(), ["tenant_acme_ro:false", "tenant_acme_rw:false"]);
    assert.equal(await journal(), "done");
    assert.equal(fs.readFileSync(file, "utf8"), yaml("premium"));
  };
  /** Back to the declared move, by hand, after a finished one. */
  const reset = async () => {
    await q("standard", "ALTER DATABASE tenant_acme ALLOW_CONNECTIONS true");
    await q("standard", "ALTER ROLE tenant_acme_rw LOGIN");
    await q("standard", "ALTER ROLE tenant_acme_ro LOGIN");
    await q(
      "premium",
      "TRUNCATE app.customers, app.invoices, app.events RESTART IDENTITY CASCADE",
      "tenant_acme",
    );
    await q("premium", "SELECT lo_unlink(oid) FROM pg_largeobject_metadata", "tenant_acme");
    fs.writeFileSync(file, DECLARED);
    await assertGivenBack();
  };

  /** The command line at a failpoint, stopped there as `how` says. */
  const killedAt = (point: Failpoint, how: "SIGINT" | "kill" | "kill-group"): Promise<Run> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, "move", "acme", ...S], {
        cwd: fleet.root,
        env: { ...process.env, ...passwordEnv(fleet), PGTENANTS_FAILPOINT: `move:${point}` },
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      let sent = false;
      const timer = setTimeout(() => {
        process.kill(-child.pid!, "SIGKILL");
        reject(new Error(`failpoint ${point} never reached:\n${stdout}\n${stderr}`));
      }, 60_000);
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
        if (!sent && stderr.includes(`failpoint move:${point} reached`)) {
          sent = true;
          if (how === "SIGINT") child.kill("SIGINT");
          else if (how === "kill") child.kill("SIGKILL");
          else process.kill(-child.pid!, "SIGKILL");
        }
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr });
      });
    });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-move-faults-"));
    file = path.join(dir, "acme.yaml");
    fs.writeFileSync(file, DECLARED);
    fs.writeFileSync(path.join(dir, "globex.yaml"), yaml("premium").replace(/acme/g, "globex"));
    fleet = await provisionFleet({ tiers: ["standard", "premium"], tenants: dir, pgVersion: 17 });
    writeStackFile(fleet);
    const su = await fleet.clusters.standard.superuserClient("tenant_acme");
    await su.query("GRANT pgtenants_large_objects TO tenant_acme_rw");
    await su.end();
    const rw = await connectAs(fleet.outputs.credentials.acme.rw);
    await rw.query(
      "INSERT INTO app.customers (email, name) SELECT 'c' || g || '@acme.test', 'C' || g FROM generate_series(1, 30) g",
    );
    await rw.query(
      "INSERT INTO app.invoices (customer_id, amount_cents) SELECT 1 + g % 30, g FROM generate_series(1, 90) g",
    );
    await rw.query("INSERT INTO app.events (kind) SELECT 'e' || g FROM generate_series(1, 20) g");
    await rw.query("DELETE FROM app.events WHERE id > 15");
    // Large objects of the tenant's own: one small, one over the copy's 1 MiB piece size.
    await rw.query("SELECT lo_from_bytea(0, 'invoice scan'::bytea)");
    await rw.query("SELECT lo_from_bytea(0, convert_to(repeat('x', 1500000), 'UTF8'))");
    await rw.end();
    seeded = await contents("standard");
  });
  afterAll(async () => {
    await fleet?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it.each(FAILPOINTS.filter((p) => p !== "closed"))(
    "SIGINT at %s gives the source back at once",
    async (point) => {
      const run = await killedAt(point, "SIGINT");
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /error: interrupted \(SIGINT\)/);
      assert.match(
        run.stderr,
        /the source on cluster standard serves as before \(logins restored\); fix the cause and run npm run move -- acme again/,
      );
      assert.equal(await journal(), "aborted");
      await assertGivenBack();
    },
  );

  it("SIGINT once the source is closed finishes the move", async () => {
    const run = await killedAt("closed", "SIGINT");
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /rewrote .*acme\.yaml: tier: premium, move removed/);
    await assertMoved();
    await reset();
  });

  it.each(FAILPOINTS)(
    "SIGKILL of the command alone at %s: the journal says where it stopped; --abort gives the source back",
    async (point) => {
      const run = await killedAt(point, "kill");
      assert.equal(run.signal, "SIGKILL");
      const phase = await journal();
      assert.equal(
        phase,
        {
          frozen: "frozen",
          loading: "frozen",
          loaded: "frozen",
          copied: "copied",
          closed: "closed",
        }[point],
      );
      // Nothing of an uncommitted load survives the connection.
      if (point === "frozen" || point === "loading")
        assert.deepEqual(await contents("premium"), EMPTY);
      const io = captureIo(fleet);
      assert.equal(await move(["acme", ...S, "--abort"], io), 0, io.errors.join("\n"));
      assert.deepEqual(io.lines, [
        `the move was abandoned: the target database on cluster premium ${point === "frozen" || point === "loading" ? "was left empty (the load was rolled back)" : "was emptied again"}, the source on cluster standard serves as before (logins restored); fix the cause and run npm run move -- acme again`,
      ]);
      assert.equal(await journal(), "aborted");
      await assertGivenBack();
    },
  );

  it.each(FAILPOINTS)(
    "SIGKILL of the whole process group at %s: running the move again finishes it",
    async (point) => {
      const run = await killedAt(point, "kill-group");
      assert.equal(run.signal, "SIGKILL");
      const io = captureIo(fleet);
      assert.equal(await move(["acme", ...S], io), 0, io.errors.join("\n"));
      assert.equal(
        io.lines[0],
        `resuming the move of tenant acme from cluster standard to cluster premium (journal: ${point === "copied" ? "frozen, copied and verified, source not closed yet" : point === "closed" ? "copied and verified, source closed, tenant file not rewritten yet" : "frozen, not copied yet"})`,
      );
      if (point === "loaded" || point === "copied")
        assert.ok(
          io.lines.some((l) => l.includes("already holds the verified copy")),
          io.lines.join("\n"),
        );
      await assertMoved();
      await reset();
    },
  );

  it("--abort with no move in progress says so and changes nothing", async () => {
    const io = captureIo(fleet);
    assert.equal(await move(["acme", ...S, "--abort"], io), 1);
    assert.deepEqual(io.errors, [
      "error: no move of tenant acme is in progress (the journal on cluster standard has none open): nothing to abort; the tenant serves from standard",
    ]);
    await assertGivenBack();
  });

  it("a tenant session holding a lock on the target ends the move after the lock timeout, naming it; nothing is changed", async () => {
    const holder = await connectAs({
      ...fleet.outputs.credentials.acme.rw,
      host: fleet.clusters.premium.host,
      port: fleet.clusters.premium.port,
    });
    try {
      await holder.query("BEGIN");
      await holder.query("LOCK TABLE app.events IN ACCESS EXCLUSIVE MODE");
      const pid = (await holder.query("SELECT pg_backend_pid() AS p")).rows[0].p as number;
      const io = captureIo(fleet, { PGTENANTS_LOCK_TIMEOUT_MS: "500" });
      const started = Date.now();
      assert.equal(await move(["acme", ...S], io), 1);
      assert.ok(Date.now() - started < 20_000);
      assert.match(
        io.errors.join("\n"),
        new RegExp(
          `^error: checking the target database tenant_acme on cluster "premium" waited for a lock another session holds and gave up \\(lock_timeout\\): session ${pid} of tenant_acme_rw \\(tenant acme\\) holds AccessExclusiveLock on app.events \\(idle in transaction, transaction open \\d+ s\\): end it with SELECT pg_terminate_backend\\(${pid}\\)`,
        ),
      );
    } finally {
      await holder.end();
    }
    await assertGivenBack();
  });

  it("eight writers during the move: every acknowledged row is on the target", async () => {
    const acknowledged: number[] = [];
    let stop = false;
    const writer = async (n: number) => {
      let c: Client | undefined;
      while (!stop) {
        try {
          if (c === undefined) {
            c = await connectAs(fleet.outputs.credentials.acme.rw);
            // The freeze ends this session: the error arrives as an event, then the next query fails.
            c.on("error", () => undefined);
          }
          const r = await c.query("INSERT INTO app.events (kind) VALUES ($1) RETURNING id", [
            `writer-${n}`,
          ]);
          acknowledged.push(Number(r.rows[0].id));
        } catch {
          await c?.end().catch(() => undefined);
          c = undefined;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      await c?.end().catch(() => undefined);
    };
    const writers = Array.from({ length: 8 }, (_, i) => writer(i));
    await new Promise((r) => setTimeout(r, 500));
    const io = captureIo(fleet);
    const code = await move(["acme", ...S], io);
    stop = true;
    await Promise.all(writers);
    assert.equal(code, 0, io.errors.join("\n"));
    assert.ok(acknowledged.length > 50, `only ${acknowledged.length} rows were written`);
    const onTarget = new Set(
      (
        await q("premium", "SELECT id FROM app.events WHERE kind LIKE 'writer-%'", "tenant_acme")
      ).map((r) => Number(r.id)),
    );
    const lost = acknowledged.filter((id) => !onTarget.has(id));
    assert.deepEqual(lost, []);
    assert.equal(onTarget.size, acknowledged.length);
  });
});
