import * as fs from "fs";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { engineLane, EngineRun, PROJECT_ROOT } from "../../harness/engine";
import {
  connectAs,
  Fleet,
  FLEET_STACK,
  FleetTenant,
  provisionFleet,
  writeTenantFiles,
} from "../../harness/fleet";

/**
 * Day-to-day changes of the manifest under the real engine (PostgreSQL 17): a new tenant plans
 * only its own resources, a limit edit updates in place, a tier edit alone or a removed file of
 * an active tenant is refused before anything changes, `pulumi destroy` is refused by protect,
 * and the rows of every tenant are there after each; the policy pack runs in the engine's own
 * policy host.
 */

const lane = engineLane();
/** The manifest as deployed; each test that changes it for good updates it. */
let manifest: FleetTenant[] = [
  { id: "acme", tier: "standard" },
  { id: "globex", tier: "premium", limits: { connectionLimit: 7 } },
];

/** The non-`same` steps of a run, as `operation name` (the URN's last part). */
function changed(run: EngineRun): string[] {
  return [...run.steps.entries()]
    .filter(([, op]) => op !== "same")
    .map(([urn, op]) => `${op} ${urn.slice(urn.lastIndexOf("::") + 2)}`)
    .sort();
}

(lane.available ? describe : describe.skip)("manifest changes under the real engine", () => {
  let fleet: Fleet;
  const rows = async () => {
    const out: Record<string, number> = {};
    for (const id of ["acme", "globex"]) {
      const c = await connectAs(fleet.outputs.credentials[id].ro);
      try {
        out[id] = Number((await c.query("SELECT count(*) AS n FROM app.customers")).rows[0].n);
      } finally {
        await c.end();
      }
    }
    return out;
  };

  beforeAll(async () => {
    fleet = await provisionFleet({
      tiers: ["standard", "premium"],
      tenants: manifest,
      deploy: "engine",
      // Room in the cluster budget for a tenant with a large limit of its own (the pack's case).
      server: { maxConnections: 300 },
    });
    for (const [id, n] of [
      ["acme", 3],
      ["globex", 2],
    ] as const) {
      const c = await connectAs(fleet.outputs.credentials[id].rw);
      try {
        for (let i = 0; i < n; i++) {
          await c.query("INSERT INTO app.customers (email, name) VALUES ($1, $2)", [
            `${id}${i}@x`,
            id,
          ]);
        }
      } finally {
        await c.end();
      }
    }
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it("a new tenant file plans and creates only that tenant's resources", async () => {
    manifest = [...manifest, { id: "hooli", tier: "standard" }];
    const { run } = await fleet.apply(manifest);
    const steps = changed(run!);
    expect(steps).toHaveLength(27);
    expect(steps.filter((s) => !/^create hooli[@-]|^create hooli$/.test(s))).toEqual([]);
    expect(await rows()).toEqual({ acme: 3, globex: 2 });
  });

  it("a limit edit updates the tenant's database and logins in place, and nothing else", async () => {
    manifest = manifest.map((t) =>
      t.id === "globex" ? { ...t, limits: { connectionLimit: 9 } } : t,
    );
    const { run } = await fleet.apply(manifest);
    expect(changed(run!)).toEqual([
      "update globex@premium-db",
      "update globex@premium-role-ro",
      "update globex@premium-role-rw",
    ]);
    const su = await fleet.clusters.premium.superuserClient();
    try {
      const r = await su.query(
        "SELECT rolname, rolconnlimit FROM pg_roles WHERE rolname LIKE 'tenant_globex_r%' ORDER BY 1",
      );
      expect(r.rows).toEqual([
        { rolname: "tenant_globex_ro", rolconnlimit: 9 },
        { rolname: "tenant_globex_rw", rolconnlimit: 9 },
      ]);
    } finally {
      await su.end();
    }
    expect(await rows()).toEqual({ acme: 3, globex: 2 });
  });

  it("editing tier alone is refused before anything changes on either cluster", async () => {
    const moved = manifest.map((t) => (t.id === "acme" ? { ...t, tier: "premium" } : t));
    await expect(fleet.apply(moved)).rejects.toThrow(/acme@standard-db.*protect/s);
    const premium = await fleet.clusters.premium.superuserClient();
    try {
      const r = await premium.query(
        "SELECT (SELECT count(*) FROM pg_database WHERE datname = 'tenant_acme') AS dbs, (SELECT count(*) FROM pg_roles WHERE rolname LIKE 'tenant_acme%') AS roles",
      );
      expect(r.rows[0]).toEqual({ dbs: "0", roles: "0" });
    } finally {
      await premium.end();
    }
    // Back to the deployed manifest, the engine finds nothing to do: the refused run changed nothing.
    const { run } = await fleet.apply(manifest);
    expect(changed(run!)).toEqual([]);
    expect(await rows()).toEqual({ acme: 3, globex: 2 });
  });

  it("removing an active tenant's file is refused, and its database, roles and rows stay", async () => {
    const without = manifest.filter((t) => t.id !== "acme");
    await expect(fleet.apply(without)).rejects.toThrow(/acme@standard-db.*protect/s);
    const { run } = await fleet.apply(manifest);
    expect(changed(run!)).toEqual([]);
    expect(await rows()).toEqual({ acme: 3, globex: 2 });
  });

  it("pulumi destroy is refused by protect", async () => {
    const r = await fleet.engine!.cli([
      "destroy",
      "--yes",
      "--stack",
      "integration",
      "--non-interactive",
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/protect/);
    expect(await rows()).toEqual({ acme: 3, globex: 2 });
  });

  it("a manifest problem fails the preview with its file and field; the next preview runs as before", async () => {
    writeTenantFiles(fleet.tenantsDir, [
      ...manifest,
      { id: "bigco", tier: "standard", limits: { connectionLimit: 5000 } },
    ]);
    try {
      await expect(fleet.engine!.preview()).rejects.toThrow(
        /tenants\/bigco\.yaml: limits\.connectionLimit: must be from 1 to 1000/,
      );
    } finally {
      writeTenantFiles(fleet.tenantsDir, manifest);
    }
    // The program's error reached the engine as the run's diagnostic, not this process as an
    // unhandled rejection: the process goes on, and the stack is as it was.
    await fleet.engine!.preview({ expectNoChanges: true });
  });

  it("the policy pack passes in the engine's policy host, and a tenant over a mandatory limit fails with that policy's message", async () => {
    const pack = path.join(PROJECT_ROOT, "policy");
    // The fleet's clusters are embedded ones without TLS, like the local stack's.
    const packConfig = path.join(fleet.root, "policy-config.json");
    fs.writeFileSync(
      packConfig,
      JSON.stringify({ "cluster-provider-settings": { localStacks: [FLEET_STACK] } }),
    );
    const withPack = { policyPacks: [pack], policyPackConfigs: [packConfig] };
    const ok = await fleet.engine!.preview(withPack);
    expect(ok.output).toMatch(/Policies:/);
    expect(ok.output).not.toMatch(/mandatory/);
    // The manifest allows up to 1000 per login; this pack's configuration allows 50, so the
    // limit the engine's policy host enforces is the configured one.
    const strict = path.join(fleet.root, "policy-config-strict.json");
    fs.writeFileSync(
      strict,
      JSON.stringify({
        "cluster-provider-settings": { localStacks: [FLEET_STACK] },
        "login-role-limits": { maxConnectionLimit: 50 },
      }),
    );
    writeTenantFiles(fleet.tenantsDir, [
      ...manifest,
      { id: "bigco", tier: "standard", limits: { connectionLimit: 60 } },
    ]);
    try {
      await expect(
        fleet.engine!.preview({ policyPacks: [pack], policyPackConfigs: [strict] }),
      ).rejects.toThrow(
        /login-role-limits[\s\S]*Login role tenant_bigco_ro must have a connection limit from 1 to 50 \(has 60\)/,
      );
    } finally {
      writeTenantFiles(fleet.tenantsDir, manifest);
    }
  });
});
