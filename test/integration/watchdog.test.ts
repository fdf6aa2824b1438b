import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import type { Client, DatabaseError } from "pg";
import { captureIo, writeStackFile } from "../../harness/dayTwo";
import { connectAs, Fleet, FLEET_STACK, provisionFleet } from "../../harness/fleet";
import { main as watchdog } from "../../tools/watchdog";

/**
 * The watchdog bounds what a tenant can lift for itself: a session that turned its statement
 * timeout or its idle-in-transaction timeout off is ended once it runs over its login's or the
 * cluster's limit, and the other sessions are left alone.
 */

const S = ["--stack", FLEET_STACK];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("pg-tenants watchdog", () => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = await provisionFleet({
      tiers: ["standard"],
      tenants: [
        { id: "acme", tier: "standard", limits: { statementTimeoutMs: 1000 } },
        { id: "initech", tier: "standard" },
      ],
      server: { idleInTransactionSessionTimeoutMs: 1500 },
    });
    writeStackFile(fleet);
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  const login = async (id: string, kind: "rw" | "ro"): Promise<Client> => {
    const c = await connectAs(fleet.outputs.credentials[id][kind]);
    c.on("error", () => undefined);
    return c;
  };

  it("ends a statement that outlives its login's statement timeout, after the session lifted it", async () => {
    const c = await login("acme", "rw");
    const bystander = await login("initech", "rw");
    try {
      await c.query("SET statement_timeout = 0");
      const pid = (await c.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
      const running = c.query("SELECT pg_sleep(30)").then(
        () => undefined,
        (err: DatabaseError) => err,
      );
      await sleep(2600);
      const dry = captureIo(fleet);
      expect(await watchdog([...S, "--once", "--dry-run"], dry)).toBe(0);
      expect(dry.lines).toHaveLength(1);
      expect(dry.lines[0]).toMatch(
        new RegExp(
          `^would end pid ${pid} of tenant_acme_rw \\(tenant acme, cluster standard\\): its statement has run \\d+ s, over its login's statement timeout of 1 s$`,
        ),
      );
      const io = captureIo(fleet);
      expect(await watchdog([...S, "--once"], io)).toBe(0);
      expect(io.lines).toHaveLength(1);
      expect(io.lines[0]).toMatch(
        new RegExp(
          `^ended pid ${pid} of tenant_acme_rw \\(tenant acme, cluster standard\\): its statement has run \\d+ s, over its login's statement timeout of 1 s$`,
        ),
      );
      const err = await running;
      expect(err?.code).toBe("57P01");
      expect((await bystander.query("SELECT 1 AS ok")).rows).toEqual([{ ok: 1 }]);
    } finally {
      await c.end().catch(() => undefined);
      await bystander.end();
    }
  });

  it("ends a session idle in a transaction beyond the cluster's limit, after it lifted its own", async () => {
    const c = await login("initech", "ro");
    try {
      await c.query("SET idle_in_transaction_session_timeout = 0");
      await c.query("BEGIN");
      await c.query("SELECT count(*) FROM app.customers");
      await sleep(3200);
      const io = captureIo(fleet);
      expect(await watchdog([...S, "--once"], io)).toBe(0);
      expect(io.lines).toHaveLength(1);
      expect(io.lines[0]).toMatch(
        /^ended pid \d+ of tenant_initech_ro \(tenant initech, cluster standard\): it has been idle in a transaction \d+ s, over the cluster's 1\.5 s$/,
      );
      await expect(c.query("SELECT 1")).rejects.toThrow();
    } finally {
      await c.end().catch(() => undefined);
    }
  });

  it("ends a session holding more advisory locks than a session may (a revoke undone by hand)", async () => {
    const su = await fleet.clusters.standard.superuserClient("tenant_acme");
    await su.query("GRANT EXECUTE ON FUNCTION pg_advisory_lock(bigint) TO PUBLIC");
    const c = await login("acme", "rw");
    try {
      await c.query("SELECT count(pg_advisory_lock(g)) FROM generate_series(1, 70) g");
      const io = captureIo(fleet);
      expect(await watchdog([...S, "--once"], io)).toBe(0);
      expect(io.lines).toHaveLength(1);
      expect(io.lines[0]).toMatch(
        /^ended pid \d+ of tenant_acme_rw \(tenant acme, cluster standard\): it holds 70 advisory locks, over the 64 a session may$/,
      );
      await expect(c.query("SELECT 1")).rejects.toThrow();
    } finally {
      await c.end().catch(() => undefined);
      await su.query("REVOKE EXECUTE ON FUNCTION pg_advisory_lock(bigint) FROM PUBLIC");
      await su.end();
    }
  });

  it("leaves sessions within their limits alone", async () => {
    const c = await login("acme", "ro");
    try {
      const io = captureIo(fleet);
      expect(await watchdog([...S, "--once"], io)).toBe(0);
      expect(io.lines).toEqual([]);
      expect((await c.query("SELECT 1 AS ok")).rows).toEqual([{ ok: 1 }]);
    } finally {
      await c.end();
    }
  });
});
