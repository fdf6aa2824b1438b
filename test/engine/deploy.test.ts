import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { CatalogSnapshot, snapshotCatalogs } from "../../harness/catalogs";
import { engineLane, mockRuntimeUrns } from "../../harness/engine";
import { FLEET_STACK, Fleet, FleetTenant, provisionFleet } from "../../harness/fleet";

/**
 * The program under the real engine and the real postgresql and random plugins, on fresh
 * embedded clusters of PostgreSQL 15 and 17: the first preview plans exactly what the mock
 * runtime sees, `pulumi up` creates it, a second run changes nothing (also after a refresh), and
 * the catalogs it leaves equal, row for row, those the SQL applier (the fast lane) leaves on an
 * identical pair of fresh clusters.
 */

const lane = engineLane();
const TENANTS: FleetTenant[] = [
  { id: "acme", tier: "standard" },
  { id: "initech", tier: "standard" },
  { id: "globex", tier: "premium", limits: { connectionLimit: 7 } },
];
const TIERS = ["standard", "premium"];

/** Default providers are the engine's own (the random resources use one); the program declares none. */
const declared = (urns: Iterable<string>) =>
  [...urns].filter((u) => !/::pulumi:providers:\w+::default/.test(u)).sort();

async function snapshots(fleet: Fleet): Promise<Record<string, CatalogSnapshot>> {
  const out: Record<string, CatalogSnapshot> = {};
  for (const [tier, cluster] of Object.entries(fleet.clusters)) {
    out[tier] = await snapshotCatalogs((db) => cluster.superuserClient(db));
  }
  return out;
}

(lane.available ? describe.each([17, 15] as const) : describe.skip.each([17, 15] as const))(
  "PostgreSQL %i under the real engine",
  (pgVersion) => {
    let engineFleet: Fleet;
    let applierFleet: Fleet | undefined;

    beforeAll(async () => {
      engineFleet = await provisionFleet({
        tiers: TIERS,
        tenants: TENANTS,
        pgVersion,
        deploy: "engine",
        deployNow: false,
      });
    });
    afterAll(async () => {
      await engineFleet?.stop();
      await applierFleet?.stop();
    });

    it("previews an empty stack with exactly the resources the mock runtime registers, then creates them", async () => {
      const expected = await mockRuntimeUrns(FLEET_STACK, engineFleet.config);
      // 27 per tenant (its four components included), the stack and the two cluster providers.
      expect(expected).toHaveLength(1 + 2 + TENANTS.length * 27);
      const preview = await engineFleet.engine!.preview();
      expect(declared(preview.steps.keys())).toEqual(expected);
      expect(new Set(preview.steps.values())).toEqual(new Set(["create"]));

      const { run } = await engineFleet.apply();
      expect(declared(run!.steps.keys())).toEqual(expected);
      expect(run!.changes).toEqual({ create: expected.length });
      expect(Object.keys(engineFleet.outputs.credentials).sort()).toEqual([
        "acme",
        "globex",
        "initech",
      ]);
    });

    it("changes nothing on a second up, nor after a refresh (the GrantRole withAdminOption read included)", async () => {
      const second = await engineFleet.apply();
      expect(Object.keys(second.run!.changes)).toEqual(["same"]);
      await engineFleet.engine!.preview({ expectNoChanges: true });
      const refresh = await engineFleet.engine!.refresh();
      expect(Object.keys(refresh.changes)).toEqual(["same"]);
      await engineFleet.engine!.preview({ expectNoChanges: true });
    });

    it("leaves the same catalogs as the SQL applier on an identical pair of fresh clusters", async () => {
      applierFleet = await provisionFleet({ tiers: TIERS, tenants: TENANTS, pgVersion });
      const [viaEngine, viaApplier] = [await snapshots(engineFleet), await snapshots(applierFleet)];
      for (const tier of TIERS) {
        expect({ tier, ...viaApplier[tier] }).toEqual({ tier, ...viaEngine[tier] });
      }
    });
  },
);
