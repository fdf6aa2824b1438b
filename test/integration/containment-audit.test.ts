import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import * as fs from "fs";
import * as path from "path";
import type { Client } from "pg";
import { LocalOutputsCredentials } from "../../client/credentials";
import type { Finding } from "../../tools/audit";
import { captureIo, writeStackFile } from "../../harness/dayTwo";
import { connectAs, Fleet, FLEET_STACK, provisionFleet } from "../../harness/fleet";
import { auditStack, CONTAINMENT_INVARIANTS, main as audit } from "../../tools/audit";
import { loadContext } from "../../tools/lib/cli";

/**
 * The audit's containment part against real clusters: what a tenant can change about itself
 * that PostgreSQL does not stop (its own settings, its password), and what only tampering with
 * the cluster changes (a revoke undone, a large object given to ro, a login without a limit, a
 * server setting), each reported with the tenant and the invariant, and nothing else.
 */

const CONTAINMENT = new Set<string>(Object.values(CONTAINMENT_INVARIANTS));
type Brief = Pick<Finding, "tier" | "tenant" | "invariant" | "message">;

describe("the audit of what tenants share", () => {
  let fleet: Fleet;
  let passwords: LocalOutputsCredentials;

  beforeAll(async () => {
    fleet = await provisionFleet({
      tiers: ["standard", "premium"],
      tenants: [
        { id: "acme", tier: "standard" },
        { id: "initech", tier: "standard" },
        { id: "globex", tier: "premium" },
      ],
    });
    writeStackFile(fleet);
    passwords = new LocalOutputsCredentials(fleet.outputs.credentials);
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  async function findings(withPasswords = false): Promise<Brief[]> {
    const io = captureIo(fleet);
    const ctx = loadContext(FLEET_STACK, fleet.root);
    const report = await auditStack(ctx, io, {
      poolSize: 2,
      ...(withPasswords ? { credentials: passwords } : {}),
    });
    return report.findings
      .filter((f) => CONTAINMENT.has(f.invariant))
      .map(({ tier, tenant, invariant, message }) => ({ tier, tenant, invariant, message }));
  }

  async function as<T>(id: string, login: "rw" | "ro", fn: (c: Client) => Promise<T>) {
    const c = await connectAs(fleet.outputs.credentials[id][login]);
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  }

  async function superuser(tier: string, sql: string, database = "postgres") {
    const c = await fleet.clusters[tier].superuserClient(database);
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  }

  it("finds nothing on a fleet just provisioned, passwords and session limits included", async () => {
    expect(await findings(true)).toEqual([]);
  });

  it("reports the settings a login gives itself, for every database or in its own", async () => {
    await as("acme", "rw", async (c) => {
      await c.query("ALTER ROLE CURRENT_USER SET work_mem = '4GB'");
      await c.query("ALTER ROLE CURRENT_USER IN DATABASE tenant_acme SET statement_timeout = 0");
    });
    try {
      expect(await findings()).toEqual([
        {
          tier: "standard",
          tenant: "acme",
          invariant: "role-settings",
          message:
            "tenant_acme_rw carries the setting work_mem=4GB; tenant roles carry only the model's statement_timeout",
        },
        {
          tier: "standard",
          tenant: "acme",
          invariant: "role-settings",
          message:
            "tenant_acme_rw in database tenant_acme carries the setting statement_timeout=0 (ALTER ROLE ... IN DATABASE ... SET); the model sets none there",
        },
      ]);
    } finally {
      await as("acme", "rw", async (c) => {
        await c.query("ALTER ROLE CURRENT_USER RESET work_mem");
        await c.query("ALTER ROLE CURRENT_USER IN DATABASE tenant_acme RESET statement_timeout");
      });
    }
  });

  it("reports a password a login changed itself, from its own credentials", async () => {
    const original = fleet.outputs.credentials.initech.ro.password;
    await as("initech", "ro", (c) => c.query("ALTER ROLE CURRENT_USER PASSWORD 'chosen-by-me'"));
    try {
      expect(await findings(true)).toEqual([
        {
          tier: "standard",
          tenant: "initech",
          invariant: "password",
          message:
            "tenant_initech_ro refused its own credentials (28P01): its password was changed outside the program (ALTER ROLE ... PASSWORD); pulumi up sets it back",
        },
      ]);
      // The command line: the credentials output saved to a file, as the docs say.
      const file = path.join(fleet.root, "credentials.json");
      fs.writeFileSync(file, JSON.stringify(fleet.outputs.credentials), { mode: 0o600 });
      const io = captureIo(fleet);
      expect(await audit(["--stack", FLEET_STACK, "--credentials", file], io)).toBe(1);
      const printed = io.lines.join("\n");
      expect(printed).toContain("tenant_initech_ro refused its own credentials (28P01)");
      expect(printed).not.toContain(original);
    } finally {
      const c = await fleet.clusters.standard.superuserClient();
      try {
        await c.query(`ALTER ROLE tenant_initech_ro PASSWORD ${c.escapeLiteral(original)}`);
      } finally {
        await c.end();
      }
    }
    expect(await findings(true)).toEqual([]);
  });

  it("refuses a credentials file that is not the credentials output, before reading a cluster", async () => {
    const file = path.join(fleet.root, "not-credentials.json");
    fs.writeFileSync(file, JSON.stringify({ acme: { rw: "x" } }));
    const io = captureIo(fleet);
    expect(await audit(["--stack", FLEET_STACK, "--credentials", file], io)).toBe(1);
    expect(io.errors).toEqual([
      `error: --credentials ${file}: tenant "acme" must have rw and ro logins`,
    ]);
    const missing = captureIo(fleet);
    const none = path.join(fleet.root, "none.json");
    expect(await audit(["--stack", FLEET_STACK, "--credentials", none], missing)).toBe(1);
    expect(missing.errors).toEqual([`error: --credentials ${none} not found`]);
  });

  it("reports a revoke undone in a tenant database, and a large object owned by the ro login", async () => {
    await superuser(
      "standard",
      "GRANT EXECUTE ON FUNCTION pg_advisory_lock(bigint) TO PUBLIC",
      "tenant_acme",
    );
    await superuser(
      "standard",
      "SELECT lo_from_bytea(424242, 'x'); ALTER LARGE OBJECT 424242 OWNER TO tenant_acme_ro",
      "tenant_acme",
    );
    try {
      expect(await findings()).toEqual([
        {
          tier: "standard",
          tenant: "acme",
          invariant: "containment-acl",
          message:
            "tenant_acme_ro may execute pg_advisory_lock in database tenant_acme; containment revokes it",
        },
        {
          tier: "standard",
          tenant: "acme",
          invariant: "containment-acl",
          message:
            "tenant_acme_rw may execute pg_advisory_lock in database tenant_acme; containment revokes it",
        },
        {
          tier: "standard",
          tenant: "acme",
          invariant: "large-objects",
          message:
            "1 large object(s) in database tenant_acme owned by tenant_acme_ro, which may not own large objects on tier standard",
        },
      ]);
    } finally {
      await superuser(
        "standard",
        "REVOKE EXECUTE ON FUNCTION pg_advisory_lock(bigint) FROM PUBLIC; SELECT lo_unlink(424242)",
        "tenant_acme",
      );
    }
  });

  it("reports a login without a connection limit, and the session limits a login starts with", async () => {
    await superuser("premium", "ALTER ROLE tenant_globex_ro CONNECTION LIMIT -1");
    await superuser("premium", "ALTER ROLE tenant_globex_rw SET idle_session_timeout = 0");
    try {
      expect(await findings(true)).toEqual([
        {
          tier: "premium",
          tenant: undefined,
          invariant: "connection-budget",
          message: "login(s) without a connection limit on cluster premium: tenant_globex_ro",
        },
        {
          tier: "premium",
          tenant: "globex",
          invariant: "role-settings",
          message:
            "tenant_globex_rw carries the setting idle_session_timeout=0; tenant roles carry only the model's statement_timeout",
        },
        {
          tier: "premium",
          tenant: "globex",
          invariant: "server-settings",
          message:
            "a new session of tenant_globex_rw starts with idle_session_timeout = 0; the model gives it 900000ms",
        },
      ]);
    } finally {
      await superuser("premium", "ALTER ROLE tenant_globex_ro CONNECTION LIMIT 20");
      await superuser("premium", "ALTER ROLE tenant_globex_rw RESET idle_session_timeout");
    }
  });

  it("reports the sessions of an offboarded tenant that outlived its offboarding", async () => {
    const session = await connectAs(fleet.outputs.credentials.initech.rw);
    session.on("error", () => undefined);
    try {
      await fleet.apply([
        { id: "acme", tier: "standard" },
        {
          id: "initech",
          tier: "standard",
          state: "offboarded",
          extra: "offboardedAt: 2026-11-01\n",
        },
        { id: "globex", tier: "premium" },
      ]);
      expect(await findings()).toEqual([
        {
          tier: "standard",
          tenant: "initech",
          invariant: "offboarded-session",
          message:
            "1 session(s) of tenant_initech_rw are still open though tenant initech is offboarded (npm run offboard ends them)",
        },
      ]);
    } finally {
      await session.end().catch(() => undefined);
    }
  });
});
