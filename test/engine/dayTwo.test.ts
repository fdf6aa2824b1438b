import * as fs from "fs";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { captureIo, writeStackFile } from "../../harness/dayTwo";
import { engineLane } from "../../harness/engine";
import {
  connectAs,
  Fleet,
  FLEET_STACK,
  FleetTenant,
  provisionFleet,
  writeTenantFiles,
} from "../../harness/fleet";
import { main as move } from "../../tools/move";
import { main as offboard } from "../../tools/offboard";

/**
 * Day two through the real engine, as docs/day-two.md documents it (PostgreSQL 15: the dump
 * commands use Debian's pg_dump 15): a declared move, copied by `npm run move`, then the source
 * placement taken out of the state and `pulumi up`; an offboarding, applied by `pulumi up`, then
 * its final dump; and a cluster stopped in the middle of `pulumi up`, after which the next run
 * converges with every row kept.
 */

const lane = engineLane();
const S = ["--stack", FLEET_STACK];

(lane.available ? describe : describe.skip)("day two under the real engine", () => {
  let fleet: Fleet;
  let manifest: FleetTenant[] = [
    { id: "acme", tier: "standard" },
    { id: "initech", tier: "standard" },
    { id: "globex", tier: "premium" },
  ];
  const count = async (id: string) => {
    const c = await connectAs(fleet.outputs.credentials[id].ro);
    try {
      return Number((await c.query("SELECT count(*) AS n FROM app.customers")).rows[0].n);
    } finally {
      await c.end();
    }
  };
  const seed = async (id: string, n: number) => {
    const c = await connectAs(fleet.outputs.credentials[id].rw);
    try {
      await c.query(
        "INSERT INTO app.customers (email, name) SELECT $1 || g || '@x.test', $1 FROM generate_series(1, $2::int) g",
        [id, n],
      );
    } finally {
      await c.end();
    }
  };

  beforeAll(async () => {
    fleet = await provisionFleet({
      tiers: ["standard", "premium"],
      tenants: manifest,
      pgVersion: 15,
      deploy: "engine",
      // Four tenants end on premium, 40 connections each (two logins of 20): within the budget.
      server: { maxConnections: 200 },
    });
    writeStackFile(fleet);
    await seed("acme", 30);
    await seed("initech", 5);
    await seed("globex", 7);
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it("moves a tenant: declared, copied, the source placement out of the state, and the credentials lead to the target", async () => {
    manifest = manifest.map((t) =>
      t.id === "acme" ? { ...t, extra: "move:\n  to: premium\n" } : t,
    );
    const declared = await fleet.apply(manifest);
    expect(
      [...declared.run!.steps.entries()]
        .filter(([, op]) => op !== "same")
        .every(([urn]) => /acme@premium|::acme$|acme-credentials/.test(urn)),
    ).toBe(true);

    const io = captureIo(fleet);
    expect(await move(["acme", ...S], io)).toBe(0);
    expect(io.errors).toEqual([]);
    const deleteLine = io.lines.find((l) => l.trim().startsWith("pulumi state delete"));
    expect(deleteLine).toBeDefined();
    const urn = /'(urn:[^']+)'/.exec(deleteLine!)?.[1];
    expect(urn).toBe(
      `urn:pulumi:${FLEET_STACK}::pg-tenants::pg-tenants:index:Tenant$pg-tenants:index:TenantPlacement::acme@standard`,
    );
    const removed = await fleet.engine!.cli([
      "state",
      "delete",
      "--stack",
      FLEET_STACK,
      "--force",
      "--target-dependents",
      "--yes",
      urn!,
    ]);
    expect(removed.code).toBe(0);
    expect(removed.stderr).not.toMatch(/error/i);

    // The tenant file now says tier: premium (the move rewrote it); deploy it as it is.
    const { run } = await fleet.apply();
    const ops = [...run!.steps.entries()].filter(([, op]) => op !== "same");
    expect(ops.filter(([, op]) => op === "delete" || op === "replace")).toEqual([]);
    // The state delete took only the source placement: nothing is created again (the
    // credentials, their secrets on aws-kms stacks, are updated in place to the target).
    expect(ops.filter(([, op]) => op === "create")).toEqual([]);
    expect(fleet.outputs.credentials.acme.rw.port).toBe(fleet.clusters.premium.port);
    expect(await count("acme")).toBe(30);
    expect([await count("initech"), await count("globex")]).toEqual([5, 7]);
    manifest = manifest.map((t) => (t.id === "acme" ? { id: "acme", tier: "premium" } : t));
  });

  it("offboards a tenant: pulumi up closes it, the final dump holds every row", async () => {
    const day = new Date().toISOString().slice(0, 10);
    manifest = manifest.map((t) =>
      t.id === "initech" ? { ...t, state: "offboarded", extra: `offboardedAt: ${day}\n` } : t,
    );
    const dataKey = fleet.outputs.credentials.initech.dataKey;
    await fleet.apply(manifest);
    await expect(connectAs(fleet.outputs.credentials.initech.rw)).rejects.toThrow(
      /pg_hba\.conf rejects connection|not permitted to log in/,
    );
    const io = captureIo(fleet, { PGTENANTS_DATA_KEY_INITECH: dataKey });
    expect(await offboard(["initech", ...S], io)).toBe(0);
    expect(io.errors).toEqual([]);
    const sealed = /^final dump of tenant initech: (\S+)/.exec(io.lines[0])?.[1];
    expect(sealed).toBeDefined();
    const manifestFile = JSON.parse(
      fs.readFileSync(path.join(fleet.root, `${sealed!}.json`), "utf8"),
    ) as { tables: Array<{ table: string; rows: number }> };
    expect(manifestFile.tables.find((t) => t.table === "app.customers")?.rows).toBe(5);
  });

  it("a cluster stopped in the middle of pulumi up fails the run with the engine's error; the next run converges and loses no row", async () => {
    const before = { acme: await count("acme"), globex: await count("globex") };
    manifest = [...manifest, { id: "hooli", tier: "premium" }, { id: "umbrella", tier: "premium" }];
    writeTenantFiles(fleet.tenantsDir, manifest);
    let paused = false;
    const onEvent = (event: EngineEvent) => {
      const urn = event.resourcePreEvent?.metadata.urn ?? "";
      if (!paused && /hooli@premium-role/.test(urn)) {
        paused = true;
        void fleet.clusters.premium.pause();
      }
    };
    await expect(fleet.engine!.up({ onEvent })).rejects.toThrow(
      // The provider's error for a server going away mid-session, whichever moment it hits:
      // refused, reset, EOF, or the shutdown notice.
      /(hooli|umbrella)@premium-\S+ \*\*creating failed\*\*[\s\S]*(connection refused|could not connect|dial tcp|connection reset by peer|EOF|the database system is shutting down)/,
    );
    expect(paused).toBe(true);
    await fleet.clusters.premium.resume();

    const { run } = await fleet.apply(manifest);
    expect(Object.keys(run!.changes).sort()).toEqual(expect.arrayContaining(["same"]));
    const second = await fleet.apply(manifest);
    expect(Object.keys(second.run!.changes)).toEqual(["same"]);
    expect({ acme: await count("acme"), globex: await count("globex") }).toEqual(before);
    expect(await count("hooli")).toBe(0);
    expect(await count("umbrella")).toBe(0);
  });
});
