import assert from "node:assert/strict";
import { describe, it } from "@jest/globals";
import { engineParallel } from "../../tools/lib/deploy";

describe("the engine's parallelism on a stack", () => {
  it("stays one below the smallest provider pool, so a provider never waits on its own lock", () => {
    assert.equal(
      engineParallel({
        clusters: { standard: { maxConnections: 4 }, premium: { maxConnections: 20 } },
      }),
      3,
    );
    assert.equal(engineParallel({ clusters: { standard: {} } }), 9);
    assert.equal(engineParallel({ clusters: { standard: { maxConnections: 1 } } }), 1);
    assert.equal(engineParallel({}), 9);
  });
});
