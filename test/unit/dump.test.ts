import assert from "node:assert/strict";
import { describe, it } from "@jest/globals";
import { CommandError } from "../../tools/lib/cli";
import { parseToolVersion, PgTool, requireToolForServer } from "../../tools/lib/dump";

/** The pg_dump and pg_restore the commands run: their version against the server's. */

describe("pg_dump versions", () => {
  it("reads the version pg_dump reports", () => {
    assert.equal(
      parseToolVersion("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
      "15.18",
    );
    assert.equal(parseToolVersion("pg_restore (PostgreSQL) 17.2\n"), "17.2");
    assert.equal(parseToolVersion("something else"), undefined);
  });

  it("refuses a pg_dump older than the server with what to install, and accepts an equal or newer one", () => {
    const tool: PgTool = { name: "pg_dump", path: "/usr/bin/pg_dump", version: "15.18", major: 15 };
    assert.throws(
      () => requireToolForServer(tool, 17, "premium"),
      new CommandError(
        'pg_dump 15.18 (/usr/bin/pg_dump) is older than PostgreSQL 17 of cluster "premium" and refuses it: install postgresql-client-17 (or newer) or set PGTENANTS_PG_BIN to the bin folder of version 17+',
      ),
    );
    requireToolForServer(tool, 15, "standard");
    requireToolForServer(tool, 14, "standard");
  });
});
