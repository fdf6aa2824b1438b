import assert from "node:assert/strict";
import { describe, it } from "@jest/globals";
import { localVersion } from "../../tools/local";

describe("the local clusters' PostgreSQL version", () => {
  it.each([
    [[undefined, undefined], 15, 15, "the newest embedded version pg_dump 15 can dump"],
    [[undefined], 17, 17, "the newest embedded version pg_dump 17 can dump"],
    [[undefined], 16, 15, "the newest embedded version pg_dump 16 can dump"],
    [[undefined], 18, 17, "the newest embedded version pg_dump 18 can dump"],
    [[17, undefined], 15, 17, "the version of the existing data"],
    [
      [undefined],
      undefined,
      17,
      "no pg_dump found: backup, restore and offboard need postgresql-client-17 (moves do not)",
    ],
    [
      [undefined],
      14,
      15,
      "pg_dump 14 is older than every embedded version: backup, restore and offboard need postgresql-client-15 or newer",
    ],
  ] as const)("data %j, pg_dump %s: PostgreSQL %s (%s)", (existing, dump, version, why) => {
    assert.deepEqual(localVersion([...existing], dump), { version, why });
  });
});
