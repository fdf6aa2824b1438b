import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import type { Client } from "pg";
import { ADVISORY_LOCK_CAP } from "../../infra/containment";
import {
  containmentAttacks,
  CONTAINMENT_TEMP_FILE_LIMIT_MB,
} from "../../harness/containmentAttacks";
import { connectAs, Fleet, provisionFleet } from "../../harness/fleet";

/**
 * The containment attacks on PostgreSQL 15 and 17, against a fleet the program provisioned on
 * clusters the bootstrap prepared (harness/containmentAttacks.ts has the attacks).
 */

describe.each([17, 15] as const)("containment on PostgreSQL %i", (pgVersion) => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = await provisionFleet({
      tiers: ["standard", "premium"],
      tenants: [
        { id: "acme", tier: "standard" },
        { id: "initech", tier: "standard" },
        { id: "globex", tier: "premium" },
      ],
      pgVersion,
      server: { tempFileLimitMb: CONTAINMENT_TEMP_FILE_LIMIT_MB },
    });
  });
  afterAll(async () => {
    await fleet?.stop();
  });
  containmentAttacks(() => fleet, pgVersion);
});

describe("a tier that gives its logins the capabilities back (PostgreSQL 17)", () => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = await provisionFleet({
      tiers: ["standard"],
      tenants: [{ id: "acme", tier: "standard" }],
      cluster: () => ({ capabilities: { advisoryLocks: true, largeObjects: true } }),
    });
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  const as = async <T>(login: "rw" | "ro", fn: (c: Client) => Promise<T>): Promise<T> => {
    const c = await connectAs(fleet.outputs.credentials.acme[login]);
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };

  it("takes advisory locks through the capped functions only, and refuses the one past the cap", async () => {
    await as("ro", async (c) => {
      for (let key = 1; key <= ADVISORY_LOCK_CAP; key++) {
        await c.query("SELECT pgtenants.advisory_lock($1)", [key]);
      }
      await expect(
        c.query("SELECT pgtenants.advisory_lock($1)", [ADVISORY_LOCK_CAP + 1]),
      ).rejects.toMatchObject({
        code: "53400",
        message: `this session holds ${ADVISORY_LOCK_CAP} advisory locks, the most a tenant session may`,
      });
      await expect(c.query("SELECT pg_advisory_lock(1)")).rejects.toMatchObject({
        code: "42501",
        message: "permission denied for function pg_advisory_lock",
      });
      // Unlocking frees the session's allowance again.
      await c.query("SELECT pg_advisory_unlock_all()");
      expect((await c.query("SELECT pgtenants.try_advisory_xact_lock(9) AS ok")).rows).toEqual([
        { ok: true },
      ]);
    });
  });

  it("lets the rw login write large objects, and never the ro login", async () => {
    const oid = await as("rw", async (c) => {
      const r = await c.query<{ oid: number }>("SELECT lo_from_bytea(0, 'payload') AS oid");
      return r.rows[0].oid;
    });
    await as("ro", async (c) => {
      await expect(c.query("SELECT lo_create(0)")).rejects.toMatchObject({
        code: "42501",
        message: "permission denied for function lo_create",
      });
    });
    await as("rw", async (c) => {
      expect((await c.query("SELECT convert_from(lo_get($1), 'UTF8') AS v", [oid])).rows).toEqual([
        { v: "payload" },
      ]);
      await c.query("SELECT lo_unlink($1)", [oid]);
    });
  });
});
