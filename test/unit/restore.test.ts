import assert from "node:assert/strict";
import { describe, it } from "@jest/globals";
import { swapStatements } from "../../tools/restore";

/** What npm run restore prints: the statements that swap a restored database in. */

describe("operator steps restore prints", () => {
  it("swaps a restore in by renaming, never dropping", () => {
    assert.deepEqual(
      swapStatements(
        "tenant_acme",
        "tenant_acme_restore_20261126070000",
        "tenant_acme_replaced_20261126070000",
      ),
      [
        "ALTER DATABASE tenant_acme ALLOW_CONNECTIONS false;",
        "-- wait until SELECT count(*) FROM pg_stat_activity WHERE datname = 'tenant_acme' is 0 (or end those sessions)",
        "ALTER DATABASE tenant_acme RENAME TO tenant_acme_replaced_20261126070000;",
        "ALTER DATABASE tenant_acme_restore_20261126070000 RENAME TO tenant_acme;",
      ],
    );
  });
});
