import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { afterAll, describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { Client } from "pg";
import { runNode, tsNodeArgs } from "../../harness/tool";
import { stopClusterDir } from "../../tools/cluster";
import { renderStackHba } from "../../tools/hba";
import { findPulumiCli, LocalState, missingCliMessage } from "../../tools/local";
import { loadStack } from "../../tools/stack";
import { freePort } from "../../harness/fleet";

/**
 * `npm run local` where no engine can run `pulumi up` (the built one set aside with
 * PGTENANTS_ENGINE=installed, no `pulumi` and no `go` on PATH, a HOME without ~/.pulumi), as a
 * child process with its data in a temporary folder and its clusters on free ports (never the
 * stack's fixed 55432/55433). test/engine/local.test.ts runs it with the engine.
 */

const ROOT = path.join(__dirname, "..", "..");
const work = fs.mkdtempSync(path.join(os.tmpdir(), "pg-tenants-local-"));
fs.chmodSync(work, 0o755);
const localDir = path.join(work, "local");

afterAll(() => {
  for (const tier of ["standard", "premium"]) {
    const dataDir = path.join(localDir, tier);
    if (fs.existsSync(dataDir)) stopClusterDir(dataDir);
  }
  fs.rmSync(work, { recursive: true, force: true });
});

/** Two consecutive free ports, as PGTENANTS_LOCAL_PORT_BASE hands out one per tier. */
async function consecutiveFreePorts(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = await freePort();
    const next = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once("error", () => resolve(false));
      server.listen(base + 1, "127.0.0.1", () => server.close(() => resolve(true)));
    });
    if (next) return base;
  }
  throw new Error("no two consecutive free ports");
}

/** PATH without any folder that holds a `pulumi` or a `go`, and a HOME without ~/.pulumi. */
function envWithoutPulumi(base: number): NodeJS.ProcessEnv {
  const pathDirs = (process.env.PATH ?? "")
    .split(path.delimiter)
    .filter(
      (d) =>
        d !== "" && !fs.existsSync(path.join(d, "pulumi")) && !fs.existsSync(path.join(d, "go")),
    );
  const home = path.join(work, "home");
  fs.mkdirSync(home, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: pathDirs.join(path.delimiter),
    HOME: home,
    PGTENANTS_LOCAL_DIR: localDir,
    PGTENANTS_LOCAL_PORT_BASE: String(base),
    // Only an installed CLI would do: npm run engine's in .engine/ is set aside.
    PGTENANTS_ENGINE: "installed",
  };
  delete env.PULUMI_HOME;
  return env;
}

function runLocal(command: "up" | "stop", env: NodeJS.ProcessEnv) {
  return runNode(tsNodeArgs(path.join("tools", "local.ts"), [command]), ROOT, env);
}

describe("npm run local without a Pulumi engine", () => {
  it("starts and bootstraps the local clusters, admits only their administrators (nothing is deployed), then stops with a message saying what is missing and how to get it", async () => {
    const base = await consecutiveFreePorts();
    const env = envWithoutPulumi(base);
    assert.equal(
      findPulumiCli(env),
      undefined,
      "the test environment still reaches a pulumi binary",
    );

    const up = await runLocal("up", env);
    assert.equal(up.code, 1, `exit code of up; stderr:\n${up.stderr}`);
    assert.deepEqual(up.stdout.trim().split("\n"), [
      // Debian 12's pg_dump is 15: the local clusters run the newest version it can dump.
      `local clusters run PostgreSQL 15: the newest embedded version pg_dump 15 can dump (kept in ${path.join(localDir, "state.json")})`,
      `cluster standard ready on 127.0.0.1:${base} (data in ${path.join(localDir, "standard")})`,
      `cluster premium ready on 127.0.0.1:${base + 1} (data in ${path.join(localDir, "premium")})`,
    ]);
    assert.deepEqual(up.stderr.trim().split("\n"), missingCliMessage());
    assert.match(up.stderr, /curl -fsSL https:\/\/get\.pulumi\.com \| sh/);

    const stateFile = path.join(localDir, "state.json");
    assert.equal(
      fs.statSync(stateFile).mode & 0o777,
      0o600,
      "state.json is readable by its owner only",
    );
    const state = JSON.parse(fs.readFileSync(stateFile, "utf8")) as LocalState;
    assert.equal(state.pgVersion, 15);
    assert.equal(
      fs.readFileSync(path.join(localDir, "standard", "PG_VERSION"), "utf8").trim(),
      "15",
    );
    const secrets = Object.values(state.clusters).flatMap((c) => [
      c.superuserPassword,
      c.provisionerPassword,
    ]);
    secrets.push(state.pulumiPassphrase);
    for (const secret of secrets) {
      assert.ok(
        !up.stdout.includes(secret) && !up.stderr.includes(secret),
        "a generated secret was printed",
      );
    }

    // The clusters are ready for `pulumi up`: the provisioning role connects, is no superuser,
    // finds the template, and pg_hba admits no tenant: pg_hba follows what is deployed, and
    // nothing is (the manifest alone never opens a database).
    const cfg = loadStack("local", ROOT);
    const hba = renderStackHba(cfg, []);
    for (const [i, tier] of ["standard", "premium"].entries()) {
      const client = new Client({
        host: "127.0.0.1",
        port: base + i,
        user: cfg.clusters[tier].username,
        password: state.clusters[tier].provisionerPassword,
        database: "postgres",
      });
      await client.connect();
      try {
        const me = await client.query(
          "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user",
        );
        assert.deepEqual(me.rows, [{ rolsuper: false, rolcreatedb: true, rolcreaterole: true }]);
        const template = await client.query(
          "SELECT datistemplate, datallowconn FROM pg_database WHERE datname = $1",
          [cfg.template],
        );
        assert.deepEqual(template.rows, [{ datistemplate: true, datallowconn: false }]);
      } finally {
        await client.end();
      }
      assert.equal(fs.readFileSync(path.join(localDir, tier, "pg_hba.conf"), "utf8"), hba[tier]);
    }

    const stop = await runLocal("stop", env);
    assert.equal(stop.code, 0, stop.stderr);
    assert.deepEqual(stop.stdout.trim().split("\n"), [
      `cluster standard stopped (data kept in ${path.join(localDir, "standard")})`,
      `cluster premium stopped (data kept in ${path.join(localDir, "premium")})`,
    ]);
    const refused = new Client({
      host: "127.0.0.1",
      port: base,
      user: "postgres",
      database: "postgres",
    });
    await assert.rejects(refused.connect(), /ECONNREFUSED/);
  });

  it("finds the CLI on PATH or in ~/.pulumi/bin", () => {
    const bin = path.join(work, "bin");
    fs.mkdirSync(bin, { recursive: true });
    const cli = path.join(bin, "pulumi");
    fs.writeFileSync(cli, "#!/bin/sh\n", { mode: 0o755 });
    assert.equal(
      findPulumiCli({ PATH: `/nonexistent${path.delimiter}${bin}`, HOME: path.join(work, "home") }),
      cli,
    );
    const home = path.join(work, "home-with-pulumi");
    fs.mkdirSync(path.join(home, ".pulumi", "bin"), { recursive: true });
    fs.writeFileSync(path.join(home, ".pulumi", "bin", "pulumi"), "#!/bin/sh\n", { mode: 0o755 });
    assert.equal(
      findPulumiCli({ PATH: "/nonexistent", HOME: home }),
      path.join(home, ".pulumi", "bin", "pulumi"),
    );
    fs.chmodSync(cli, 0o644);
    assert.equal(findPulumiCli({ PATH: bin, HOME: path.join(work, "home") }), undefined);
  });
});
