import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { describe, expect, it } from "@jest/globals";
import assert from "node:assert/strict";
import type { CommandIo } from "../../tools/lib/cli";
import { main } from "../../tools/hba";
import { runProgram, TenantSpec } from "../../harness/program";
import { writeTenantFiles } from "../../harness/tenantFiles";

const TENANTS: TenantSpec[] = [
  { id: "acme", tier: "standard" },
  { id: "globex", tier: "premium", extra: "limits:\n  connectionLimit: 40\n" },
  { id: "initech", tier: "standard" },
];

/** A project root with the repository's local stack file and the given tenant files. */
function project(tenants: readonly TenantSpec[], extraFiles: Record<string, string> = {}): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "pg-tenants-hba-"));
  fs.mkdirSync(path.join(root, "stacks"));
  fs.copyFileSync(
    path.join("stacks", "Pulumi.local.yaml"),
    path.join(root, "stacks", "Pulumi.local.yaml"),
  );
  writeTenantFiles(path.join(root, "tenants"), tenants);
  for (const [name, text] of Object.entries(extraFiles))
    fs.writeFileSync(path.join(root, "tenants", name), text);
  return root;
}

function capture(root: string) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CommandIo = {
    root,
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    env: process.env,
    now: () => new Date(),
  };
  return { io, out, err };
}

describe("npm run hba", () => {
  it("writes one pg_hba.<tier>.conf per cluster, equal to the program's pgHba output for the same manifest", async () => {
    const root = project(TENANTS);
    const { io, out, err } = capture(root);
    assert.equal(await main(["--stack", "local", "--out", "out"], io), 0);
    assert.deepEqual(err, []);
    assert.deepEqual(out, [
      `wrote ${path.join("out", "pg_hba.standard.conf")} (cluster standard, 2 tenant line(s))`,
      `wrote ${path.join("out", "pg_hba.premium.conf")} (cluster premium, 1 tenant line(s))`,
    ]);
    // fs returns arrays of the outer realm, which node:assert's strict mode tells apart from jest's.
    expect(fs.readdirSync(path.join(root, "out")).sort()).toEqual([
      "pg_hba.premium.conf",
      "pg_hba.standard.conf",
    ]);

    const program = await runProgram("local", TENANTS);
    for (const tier of ["standard", "premium"]) {
      const written = fs.readFileSync(path.join(root, "out", `pg_hba.${tier}.conf`), "utf8");
      assert.equal(
        written,
        program.outputs.pgHba[tier],
        `pg_hba.${tier}.conf differs from the stack output`,
      );
    }
    const standard = fs
      .readFileSync(path.join(root, "out", "pg_hba.standard.conf"), "utf8")
      .split("\n");
    assert.ok(standard.includes("host tenant_acme +tenant_acme 127.0.0.1/32 scram-sha-256"));
    assert.ok(standard.includes("host tenant_initech +tenant_initech 127.0.0.1/32 scram-sha-256"));
    assert.ok(
      !standard.some((l) => l.includes("globex")),
      "the standard cluster admits no premium tenant",
    );
    assert.deepEqual(standard.slice(-3), ["local all all reject", "host all all all reject", ""]);
  });

  it("refuses an invalid manifest with every problem located, and writes nothing", async () => {
    const root = project(TENANTS, {
      "evil.yaml": `id: "acme'; DROP ROLE postgres; --"\ndisplayName: Evil\ntier: standard\n`,
    });
    const { io, out, err } = capture(root);
    assert.equal(await main(["--stack", "local", "--out", "out"], io), 2);
    assert.deepEqual(out, []);
    assert.deepEqual(err, [
      "error: The tenants manifest has 1 problem(s):",
      `  - ${path.join("tenants", "evil.yaml")}: id: must match ^[a-z][a-z0-9_]*$ (a lowercase letter, then lowercase letters, digits or _)`,
    ]);
    assert.equal(fs.existsSync(path.join(root, "out")), false);
  });

  it("names what is missing from the command line; --stack defaults to local", async () => {
    const root = project(TENANTS);
    const missing = capture(root);
    assert.equal(await main(["--stack", "local"], missing.io), 2);
    assert.deepEqual(missing.out, []);
    assert.deepEqual(missing.err, [
      "error: missing --out\nusage: pg-tenants hba [--stack <name>] --out <dir>",
    ]);
    assert.equal(fs.existsSync(path.join(root, "out")), false);
    const extra = capture(root);
    assert.equal(await main(["--out", "out", "standard"], extra.io), 2);
    assert.deepEqual(extra.err, [
      'error: unexpected argument "standard"\nusage: pg-tenants hba [--stack <name>] --out <dir>',
    ]);
    const local = capture(root);
    assert.equal(await main(["--out", "out"], local.io), 0);
    assert.deepEqual(local.err, []);
    assert.deepEqual(local.out, [
      `wrote ${path.join("out", "pg_hba.standard.conf")} (cluster standard, 2 tenant line(s))`,
      `wrote ${path.join("out", "pg_hba.premium.conf")} (cluster premium, 1 tenant line(s))`,
    ]);
    const { io, err } = capture(root);
    assert.equal(await main(["--stack", "staging", "--out", "out"], io), 2);
    assert.deepEqual(err, [
      'error: Unknown stack "staging":',
      "  - stacks/Pulumi.staging.yaml: not found; stacks here: local",
    ]);
  });
});
