import { afterAll, beforeAll, describe } from "@jest/globals";
import {
  containmentAttacks,
  CONTAINMENT_TEMP_FILE_LIMIT_MB,
} from "../../harness/containmentAttacks";
import { Fleet, provisionFleet } from "../../harness/fleet";

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
