import { spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { afterAll, describe, expect, it } from "@jest/globals";
import { Client } from "pg";
import { engineLane, PROJECT_ROOT } from "../../harness/engine";
import { freePort } from "../../harness/fleet";
import { cliArgs, runNode } from "../../harness/tool";
import { stopClusterDir } from "../../tools/cluster";

/**
 * `npm run local` as a new user runs it, with the real engine: the local stack's clusters on
 * free ports and its data in a temporary folder (PGTENANTS_LOCAL_DIR, PGTENANTS_LOCAL_PORT_BASE),
 * the sample tenants deployed by `pulumi up`, a second run that changes nothing, a login URL on
 * request that reads its own tenant's tables and nothing else, and no tracked file touched.
 */

const lane = engineLane();
const work = fs.mkdtempSync(path.join(os.tmpdir(), "pg-tenants-local-engine-"));
fs.chmodSync(work, 0o755);
const localDir = path.join(work, "local");

afterAll(() => {
  spawnSync(process.execPath, [path.join(PROJECT_ROOT, "bin", "pg-tenants.js"), "local", "stop"], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, PGTENANTS_LOCAL_DIR: localDir },
  });
  for (const tier of ["standard", "premium"]) {
    const dataDir = path.join(localDir, tier);
    if (fs.existsSync(dataDir)) stopClusterDir(dataDir);
  }
  fs.rmSync(work, { recursive: true, force: true });
});

/** `n` consecutive free ports: the clusters' and their poolers'. */
async function consecutiveFreePorts(n: number): Promise<number> {
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = await freePort();
    let ok = true;
    for (let i = 1; i < n && ok; i++) ok = await free(base + i);
    if (ok) return base;
  }
  throw new Error(`no ${n} consecutive free ports`);
}

function local(args: string[], env: NodeJS.ProcessEnv) {
  return runNode(cliArgs(["local", ...args]), PROJECT_ROOT, env);
}

const tracked = () =>
  spawnSync("git", ["status", "--porcelain", "--untracked-files=no"], {
    cwd: PROJECT_ROOT,
    encoding: "utf8",
  }).stdout;

(lane.available ? describe : describe.skip)("npm run local with the real engine", () => {
  let env: NodeJS.ProcessEnv;

  it("deploys the sample tenants, summarises what exists, and changes nothing the second time", async () => {
    const base = await consecutiveFreePorts(4);
    env = {
      ...process.env,
      PGTENANTS_LOCAL_DIR: localDir,
      PGTENANTS_LOCAL_PORT_BASE: String(base),
    };
    const before = tracked();
    const first = await local([], env);
    expect(first.stderr).not.toMatch(/error/i);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^pulumi up: created \d+$/m);
    expect(first.stdout).toContain("local stack: 3 tenant(s) on 2 cluster(s)");
    expect(first.stdout).toContain(`  standard: 127.0.0.1:${base}  acme, initech`);
    expect(first.stdout).toContain(`  premium: 127.0.0.1:${base + 1}  globex`);
    expect(first.stdout).toContain('connect: psql "$(npm run -s local -- url acme ro)"');

    const second = await local([], env);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^pulumi up: nothing changed \(unchanged \d+\)$/m);
    expect(tracked()).toBe(before);
  });

  it("prints acme's ro URL alone on stdout; it reads acme's tables and nothing else", async () => {
    const r = await local(["url", "acme", "ro"], env);
    expect(r.code).toBe(0);
    const url = r.stdout.trim();
    expect(url).toMatch(
      /^postgresql:\/\/tenant_acme_ro:[^@]+@127\.0\.0\.1:\d+\/tenant_acme\?sslmode=disable$/,
    );
    const c = new Client({ connectionString: url });
    await c.connect();
    try {
      expect((await c.query("SELECT current_user AS u, current_database() AS d")).rows).toEqual([
        { u: "tenant_acme_ro", d: "tenant_acme" },
      ]);
      expect((await c.query("SELECT count(*)::int AS n FROM app.customers")).rows).toEqual([
        { n: 0 },
      ]);
      await expect(
        c.query("INSERT INTO app.customers (email, name) VALUES ('a', 'b')"),
      ).rejects.toThrow("permission denied for table customers");
      await expect(c.query("SELECT datname FROM pg_database")).rejects.toThrow(
        "permission denied for table pg_database",
      );
    } finally {
      await c.end();
    }
    const other = new Client({
      connectionString: url.replace("/tenant_acme?", "/tenant_initech?"),
    });
    await expect(other.connect()).rejects.toThrow(/pg_hba\.conf rejects connection/);
  });

  it("keeps a deployed tenant's pg_hba when an edit of its tier alone is refused", async () => {
    // A project of its own (the sample tenants are never edited): its stacks, tenants and
    // templates copied, the program and the built engine linked.
    const project = path.join(work, "project");
    fs.mkdirSync(project, { recursive: true });
    for (const f of ["Pulumi.yaml", "stacks", "tenants", "templates"]) {
      fs.cpSync(path.join(PROJECT_ROOT, f), path.join(project, f), { recursive: true });
    }
    for (const f of ["infra", ".engine", "node_modules"]) {
      fs.symlinkSync(path.join(PROJECT_ROOT, f), path.join(project, f));
    }
    const base = await consecutiveFreePorts(4);
    const own = {
      ...process.env,
      PGTENANTS_LOCAL_DIR: path.join(work, "project-local"),
      PGTENANTS_LOCAL_PORT_BASE: String(base),
    };
    const run = (args: string[]) => runNode(cliArgs(["local", ...args]), project, own);
    try {
      expect((await run([])).code).toBe(0);
      const url = (await run(["url", "acme", "ro"])).stdout.trim();
      const acme = path.join(project, "tenants", "acme.yaml");
      fs.writeFileSync(
        acme,
        fs.readFileSync(acme, "utf8").replace("tier: standard", "tier: premium"),
      );
      const refused = await run([]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(
        /pg_hba still admits what was deployed before[\s\S]*Database::acme@standard-db" cannot be deleted/,
      );
      const c = new Client({ connectionString: url });
      await c.connect();
      try {
        expect((await c.query("SELECT current_database() AS d")).rows).toEqual([
          { d: "tenant_acme" },
        ]);
      } finally {
        await c.end();
      }
      // The engine's own CLI on the local stack, as day two's steps run it.
      const output = await run([
        "pulumi",
        "stack",
        "output",
        "--stack",
        "local",
        "--json",
        "tenants",
      ]);
      expect(output.code).toBe(0);
      expect(Object.keys(JSON.parse(output.stdout) as object).sort()).toEqual(
        fs
          .readdirSync(path.join(project, "tenants"))
          .filter((f) => f.endsWith(".yaml"))
          .map((f) => f.replace(/\.yaml$/, ""))
          .sort(),
      );
    } finally {
      await run(["stop"]);
    }
  });
});
