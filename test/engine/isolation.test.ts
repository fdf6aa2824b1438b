import { afterAll, beforeAll, describe } from "@jest/globals";
import {
  containmentAttacks,
  CONTAINMENT_TEMP_FILE_LIMIT_MB,
} from "../../harness/containmentAttacks";
import { engineLane } from "../../harness/engine";
import { Fleet, provisionFleet } from "../../harness/fleet";
import { isolationAttacks } from "../../harness/isolationAttacks";

/**
 * The isolation and containment attacks against what the real engine and the real postgresql
 * provider provisioned (the same attacks as the fast lane's, harness/isolationAttacks.ts and
 * harness/containmentAttacks.ts), on PostgreSQL 17.
 */

const lane = engineLane();

(lane.available ? describe : describe.skip)(
  "attacks on a fleet the real engine provisioned",
  () => {
    let fleet: Fleet;
    beforeAll(async () => {
      fleet = await provisionFleet({
        tiers: ["standard", "premium"],
        tenants: [
          { id: "acme", tier: "standard" },
          { id: "initech", tier: "standard" },
          { id: "globex", tier: "premium" },
        ],
        deploy: "engine",
        server: { tempFileLimitMb: CONTAINMENT_TEMP_FILE_LIMIT_MB },
      });
    });
    afterAll(async () => {
      await fleet?.stop();
    });
    isolationAttacks(() => fleet);
    containmentAttacks(() => fleet, 17);
  },
);
