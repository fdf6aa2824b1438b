import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, it, jest } from "@jest/globals";
import { tenantYaml } from "../../harness/tenantFiles";
import { affectedStacks, main, Side } from "../../tools/affected";
import { loadStack } from "../../tools/stack";

const ROOT = path.join(__dirname, "..", "..");
const made: string[] = [];
afterAll(() => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const tenantText = (id: string, tier: string) => tenantYaml({ id, tier });

/** A git repository holding this project's sample stacks and the given tenants, committed. */
function repo(tenants: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pg-tenants-affected-test-"));
  made.push(dir);
  fs.mkdirSync(path.join(dir, "stacks"));
  fs.mkdirSync(path.join(dir, "tenants"));
  fs.mkdirSync(path.join(dir, "infra"));
  for (const s of ["local", "production", "production-1"]) {
    fs.copyFileSync(
      path.join(ROOT, "stacks", `Pulumi.${s}.yaml`),
      path.join(dir, "stacks", `Pulumi.${s}.yaml`),
    );
  }
  for (const [id, tier] of Object.entries(tenants))
    fs.writeFileSync(path.join(dir, "tenants", `${id}.yaml`), tenantText(id, tier));
  fs.writeFileSync(path.join(dir, "infra", "index.ts"), "export = async () => ({});\n");
  git(dir, "init", "-q", "-b", "main");
  git(dir, "add", ".");
  git(dir, "commit", "-q", "-m", "base");
  return dir;
}

function git(dir: string, ...args: string[]): string {
  return execFileSync(
    "git",
    ["-c", "user.name=test", "-c", "user.email=test@example.com", ...args],
    { cwd: dir, encoding: "utf8" },
  );
}

/** Runs `npm run affected -- <args>` in `dir`: exit code, stdout and stderr. */
function affected(dir: string, ...args: string[]): { code: number; out: string; err: string } {
  const out: string[] = [];
  const err: string[] = [];
  const log = jest
    .spyOn(console, "log")
    .mockImplementation((...a: unknown[]) => void out.push(a.join(" ")));
  const error = jest
    .spyOn(console, "error")
    .mockImplementation((...a: unknown[]) => void err.push(a.join(" ")));
  try {
    const code = main(args, dir);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

const BASE = { acme: "standard", globex: "premium", initech: "standard", wayne: "standard" };

describe("npm run affected", () => {
  it("a pull request that adds one tenant affects only that tenant's shard (and the whole local stack)", () => {
    const dir = repo(BASE);
    git(dir, "checkout", "-q", "-b", "pr");
    // hooli hashes to bucket 0 of 2: the production stack.
    fs.writeFileSync(path.join(dir, "tenants", "hooli.yaml"), tenantText("hooli", "standard"));
    git(dir, "add", ".");
    git(dir, "commit", "-q", "-m", "add hooli");
    assert.deepEqual(affected(dir, "--base", "main"), {
      code: 0,
      out: '["local","production"]',
      err: "",
    });
    assert.deepEqual(
      affected(dir, "--base", "main", "--stack", "production", "--stack", "production-1"),
      {
        code: 0,
        out: '["production"]',
        err: "",
      },
    );
  });

  it("a changed tenant of bucket 1 affects production-1 only; an untracked one counts too", () => {
    const dir = repo(BASE);
    fs.appendFileSync(path.join(dir, "tenants", "acme.yaml"), "limits:\n  connectionLimit: 5\n");
    assert.equal(
      affected(dir, "--base", "HEAD", "--stack", "production", "--stack", "production-1").out,
      '["production-1"]',
    );
    fs.writeFileSync(path.join(dir, "tenants", "stark.yaml"), tenantText("stark", "premium"));
    assert.equal(affected(dir, "--base", "HEAD").out, '["local","production-1"]');
  });

  it("a removed tenant affects the shard that declared it", () => {
    const dir = repo(BASE);
    fs.rmSync(path.join(dir, "tenants", "globex.yaml"));
    assert.equal(affected(dir, "--base", "HEAD").out, '["local","production"]');
  });

  it("nothing changed, or only files outside the program: no stack", () => {
    const dir = repo(BASE);
    assert.equal(affected(dir, "--base", "HEAD").out, "[]");
    fs.writeFileSync(path.join(dir, "NOTES.md"), "notes\n");
    assert.equal(affected(dir, "--base", "HEAD").out, "[]");
  });

  it("a change of the program affects every stack", () => {
    const dir = repo(BASE);
    fs.appendFileSync(path.join(dir, "infra", "index.ts"), "// changed\n");
    assert.equal(affected(dir, "--base", "HEAD").out, '["local","production","production-1"]');
  });

  it("a change of the gate (the check's folder) affects every stack", () => {
    const dir = repo(BASE);
    fs.mkdirSync(path.join(dir, "tools", "check"), { recursive: true });
    fs.writeFileSync(path.join(dir, "tools", "check", "report.ts"), "// changed\n");
    assert.equal(affected(dir, "--base", "HEAD").out, '["local","production","production-1"]');
  });

  it("refuses a new bucket count that moves tenants, naming each move and its state command", () => {
    const dir = repo(BASE);
    for (const s of ["production", "production-1"]) {
      const file = path.join(dir, "stacks", `Pulumi.${s}.yaml`);
      fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("buckets: 2", "buckets: 3"));
    }
    const third = fs
      .readFileSync(path.join(dir, "stacks", "Pulumi.production-1.yaml"), "utf8")
      .replace("bucket: 1", "bucket: 2");
    fs.writeFileSync(path.join(dir, "stacks", "Pulumi.production-2.yaml"), third);

    const refused = affected(dir, "--base", "HEAD");
    assert.equal(refused.code, 1);
    assert.equal(refused.out, "");
    assert.equal(
      refused.err,
      [
        "error: This change moves 1 tenant(s) to another stack:",
        "  - wayne: production -> production-2",
        "      pulumi state move --source production --dest production-2 'urn:pulumi:production::pg-tenants::pg-tenants:index:Tenant::wayne'",
        'Move their state first (see "Re-sharding" in docs/scale.md), then run again with --allow-moves.',
      ].join("\n"),
    );
    const allowed = affected(dir, "--base", "HEAD", "--allow-moves");
    assert.equal(allowed.code, 0);
    assert.equal(allowed.out, '["production","production-1","production-2"]');
  });

  it("refuses a missing --base and an unknown stack", () => {
    const dir = repo(BASE);
    assert.deepEqual(affected(dir), {
      code: 2,
      out: "",
      err: "error: missing --base\nusage: pg-tenants affected --base <git ref> [--stack <name>]... [--allow-moves]",
    });
    assert.deepEqual(affected(dir, "--base", "HEAD", "--stack", "staging"), {
      code: 2,
      out: "",
      err: "error: unknown stack(s) staging; stacks here: local, production, production-1",
    });
    const bad = affected(dir, "--base", "no-such-ref");
    assert.equal(bad.code, 1);
    assert.match(bad.err, /^error: git merge-base no-such-ref HEAD failed: /);
  });
});

describe("affectedStacks", () => {
  const production = loadStack("production");
  const production1 = loadStack("production-1");
  const side = (ids: string[]): Side => ({
    stacks: [production, production1],
    tenants: new Map([
      ["tenants", ids.map((id) => ({ id, tier: "standard", file: `tenants/${id}.yaml` }))],
    ]),
  });

  it("puts a tenant added to the manifest in exactly its shard", () => {
    assert.deepEqual(
      affectedStacks(
        [{ path: "tenants/stark.yaml", status: "added" }],
        side(["acme"]),
        side(["acme", "stark"]),
      ),
      { stacks: ["production-1"], moves: [] },
    );
  });

  it("reports a stack file change for that stack alone", () => {
    assert.deepEqual(
      affectedStacks(
        [{ path: "stacks/Pulumi.production.yaml", status: "modified" }],
        side(["acme"]),
        side(["acme"]),
      ),
      { stacks: ["production"], moves: [] },
    );
  });
});
