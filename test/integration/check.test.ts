import { afterAll, beforeAll, describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { cliArgs } from "../../harness/tool";

/**
 * `npm run check` as a user runs it: a child process in a copy of the repository's stacks and
 * tenants (the program itself is the real infra/), its exit status, and what it prints.
 */

const ROOT = path.resolve(__dirname, "..", "..");

const temps: string[] = [];

/** A fresh project folder with the repository's stacks/ and the fixture tenants as tenants/. */
function project(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pg-tenants-check-"));
  temps.push(dir);
  fs.cpSync(path.join(ROOT, "stacks"), path.join(dir, "stacks"), { recursive: true });
  fs.cpSync(path.join(ROOT, "test", "fixtures", "tenants"), path.join(dir, "tenants"), {
    recursive: true,
  });
  return dir;
}

function edit(dir: string, file: string, change: (text: string) => string): void {
  const full = path.join(dir, file);
  const before = fs.readFileSync(full, "utf8");
  const after = change(before);
  assert.notEqual(after, before, `the edit of ${file} must change it`);
  fs.writeFileSync(full, after);
}

function check(dir: string, ...args: string[]) {
  const result = spawnSync(process.execPath, cliArgs(["check", ...args]), {
    cwd: dir,
    encoding: "utf8",
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

interface JsonReport {
  ok: boolean;
  tenants: {
    id: string;
    placements: { cluster: string; database: string; roles: string[] }[];
    key: string;
  }[];
  violations: { policy: string; level: string; tenant?: string; message: string }[];
  changes?: {
    added: { id: string }[];
    changed: { id: string; fields: { field: string; from: unknown; to: unknown }[] }[];
    removed: { id: string }[];
    violations: { rule: string; tenant: string; message: string }[];
  };
}

const json = (stdout: string) => JSON.parse(stdout) as JsonReport;
const policyMessages = (r: JsonReport) =>
  r.violations.map((v) => `${v.level} ${v.policy}: ${v.message}`);

let sample: string;
beforeAll(() => {
  sample = project();
});
afterAll(() => {
  for (const dir of temps) fs.rmSync(dir, { recursive: true, force: true });
});

describe("npm run check", () => {
  it("passes the local stack and prints what each sample tenant gets", () => {
    const { status, stdout, stderr } = check(sample, "--stack", "local");
    assert.equal(stderr, "");
    assert.equal(status, 0);
    const lines = stdout.split("\n");
    assert.equal(lines[0], "pg-tenants check of stack local: passed");
    assert.match(
      lines[1],
      /^3 tenant\(s\) on 2 cluster\(s\), \d+ resources, 14 policies: 0 mandatory and 0 advisory violation\(s\)$/,
    );
    for (const expected of [
      "  acme (Acme Corporation), active, key local",
      "    standard (127.0.0.1:55432): database tenant_acme; roles tenant_acme, tenant_acme_owner, tenant_acme_rw, tenant_acme_ro",
      "  globex (Globex), active, key local",
      "    premium (127.0.0.1:55433): database tenant_globex; roles tenant_globex, tenant_globex_owner, tenant_globex_rw, tenant_globex_ro",
      "  initech (Initech), active, key local",
      "    standard (127.0.0.1:55432): database tenant_initech; roles tenant_initech, tenant_initech_owner, tenant_initech_rw, tenant_initech_ro",
    ]) {
      assert.ok(
        lines.includes(expected),
        `missing line ${JSON.stringify(expected)} in:\n${stdout}`,
      );
    }
    assert.deepEqual(lines.slice(lines.indexOf("Violations:")), ["Violations:", "  none", ""]);
  });

  it("renders a markdown table per tenant for a pull request (production: KMS keys)", () => {
    const { status, stdout } = check(sample, "--stack", "production", "--format", "markdown");
    assert.equal(status, 0);
    const lines = stdout.split("\n");
    assert.equal(lines[0], "### pg-tenants check: stack `production` passed");
    assert.ok(lines.includes("| Tenant | State | Cluster | Database | Roles | Key |"));
    // One row per tenant of the stack's shard, each with its cluster, names and KMS alias.
    const count = Number(/^(\d+) tenant\(s\)/.exec(lines[2])?.[1]);
    const rows = lines.filter((l) =>
      /^\| (\w+) \\\([^|]+\\\) \| active \| (standard|premium) \\\(\2\.db\.internal\.example\.com:5432\\\) \| `tenant_\1` \| `tenant_\1`, `tenant_\1_owner`, `tenant_\1_rw`, `tenant_\1_ro` \| `alias\/pg-tenants\/production\/\1` \|$/.test(
        l,
      ),
    );
    assert.ok(count > 0, stdout);
    assert.equal(rows.length, count, stdout);
    assert.ok(lines.includes("None: every policy of the `pg-tenants` pack passed."));
  });

  it("fails a stack config that breaks policies, with each policy's message (json)", () => {
    const dir = project();
    edit(dir, "stacks/Pulumi.production.yaml", (t) =>
      t
        .replace(
          "pg-tenants:template: customer_template_v1",
          "pg-tenants:template: customer_template_v2",
        )
        .replace("deletionWindowDays: 30", "deletionWindowDays: 7")
        // Encrypted values the check cannot read: it uses placeholders, as for no value at all.
        .replace(
          "config:\n",
          "config:\n  pg-tenants:clusterPasswords:\n    standard:\n      secure: v1:AAAA\n    premium:\n      secure: v1:BBBB\n",
        )
        .replace(
          /(premium\.db\.internal\.example\.com[\s\S]*?)sslmode: verify-full/,
          "$1sslmode: disable",
        ),
    );
    const { status, stdout } = check(dir, "--stack", "production", "--format", "json");
    assert.equal(status, 1);
    const report = json(stdout);
    assert.equal(report.ok, false);
    // Whichever tenants the stack's shard holds, each gets both messages.
    const ids = report.tenants.map((t) => t.id);
    assert.ok(ids.length > 0);
    assert.deepEqual(
      policyMessages(report).sort(),
      [
        "mandatory cluster-provider-settings: The provider of cluster cluster-premium must use sslmode require, verify-ca, verify-full on stack production (has disable).",
        ...ids.map(
          (id) =>
            `mandatory tenant-database-settings: Tenant database tenant_${id} must be cloned from an approved template (customer_template_v1), not customer_template_v2.`,
        ),
        ...ids.map(
          (id) =>
            `mandatory tenant-key-settings: Tenant KMS key ${id}-key-kms must keep a deletion window of at least 30 days (has 7).`,
        ),
      ].sort(),
    );
  });

  it("fails a tenant file that breaks a policy, naming the tenant", () => {
    const dir = project();
    // The manifest allows up to 1000 per login; this pack's configuration allows 60.
    edit(dir, "tenants/acme.yaml", (t) => `${t}limits:\n  connectionLimit: 70\n`);
    fs.writeFileSync(
      path.join(dir, "policy-config.json"),
      JSON.stringify({ "login-role-limits": { maxConnectionLimit: 60 } }),
    );
    const { status, stdout } = check(
      dir,
      "--stack",
      "local",
      "--format",
      "json",
      "--policy-config",
      "policy-config.json",
    );
    assert.equal(status, 1);
    // Passwords (placeholders here) and data keys never reach the report.
    assert.ok(!stdout.includes("placeholder-not-a-secret"));
    assert.ok(!/password/i.test(stdout), stdout);
    const report = json(stdout);
    assert.deepEqual(
      report.violations.map((v) => [v.tenant, v.policy, v.message]),
      [
        [
          "acme",
          "login-role-limits",
          "Login role tenant_acme_rw must have a connection limit from 1 to 60 (has 70).",
        ],
        [
          "acme",
          "login-role-limits",
          "Login role tenant_acme_ro must have a connection limit from 1 to 60 (has 70).",
        ],
      ],
    );
  });

  it("judges a stack by its own name prefix, not the pack's default", () => {
    const dir = project();
    edit(dir, "stacks/Pulumi.local.yaml", (t) =>
      t.replace("pg-tenants:namePrefix: tenant_", "pg-tenants:namePrefix: cust_"),
    );
    const { status, stdout } = check(dir, "--stack", "local", "--format", "json");
    assert.equal(status, 0, stdout);
    const report = json(stdout);
    assert.deepEqual(report.violations, []);
    assert.ok(stdout.includes('"cust_acme_rw"'), "the roles carry the stack's prefix");
  });

  it("takes enforcement levels and thresholds from a policy config file", () => {
    const dir = project();
    edit(dir, "tenants/acme.yaml", (t) => `${t}limits:\n  connectionLimit: 70\n`);
    fs.writeFileSync(
      path.join(dir, "policy-config.json"),
      JSON.stringify({
        "login-role-limits": { enforcementLevel: "advisory", maxConnectionLimit: 60 },
      }),
    );
    const { status, stdout } = check(
      dir,
      "--stack",
      "local",
      "--policy-config",
      "policy-config.json",
    );
    assert.equal(status, 0, stdout);
    assert.ok(stdout.includes("0 mandatory and 2 advisory violation(s)"), stdout);
    assert.ok(
      stdout.includes(
        "  advisory [login-role-limits] postgresql:index/role:Role acme@standard-role-rw: Login role tenant_acme_rw must have a connection limit from 1 to 60 (has 70).",
      ),
      stdout,
    );
  });

  it("refuses an invalid manifest before running anything, without a stack trace", () => {
    const dir = project();
    edit(dir, "tenants/initech.yaml", (t) => t.replace("tier: standard", "tier: gold"));
    const { status, stdout, stderr } = check(dir, "--stack", "local");
    assert.equal(status, 2);
    assert.equal(stdout, "");
    assert.equal(
      stderr,
      'error: The tenants manifest has 1 problem(s):\n  - tenants/initech.yaml: tier: unknown tier "gold"; the stack has: standard, premium\n',
    );
  });

  it("refuses bad usage with the usage line", () => {
    const { status, stderr } = check(sample, "--stack", "local", "--format", "yaml");
    assert.equal(status, 2);
    assert.equal(
      stderr,
      "error: --format must be one of text, markdown, json\nusage: pg-tenants check [--stack <name>] [--format <text|markdown|json>] [--base <dir or git ref>] [--policy-config <file>]\n",
    );
  });

  it("compares with a base folder: added, changed, removed; removing a tenant not offboarded fails", () => {
    const base = project();
    // On the base branch initech was offboarded already; acme was not.
    edit(base, "tenants/initech.yaml", (t) =>
      t.replace("state: active", "state: offboarded\noffboardedAt: 2026-01-15"),
    );
    const head = project();
    fs.rmSync(path.join(head, "tenants", "acme.yaml"));
    fs.rmSync(path.join(head, "tenants", "initech.yaml"));
    fs.writeFileSync(
      path.join(head, "tenants", "hooli.yaml"),
      "id: hooli\ndisplayName: Hooli\ntier: premium\n",
    );
    edit(head, "tenants/globex.yaml", (t) =>
      t.replace("connectionLimit: 40", "connectionLimit: 60"),
    );

    const { status, stdout } = check(head, "--stack", "local", "--base", base, "--format", "json");
    assert.equal(status, 1, stdout);
    const report = json(stdout);
    assert.deepEqual(policyMessages(report), []);
    const changes = report.changes;
    assert.ok(changes !== undefined);
    assert.deepEqual(
      changes.added.map((e) => e.id),
      ["hooli"],
    );
    assert.deepEqual(changes.changed, [
      {
        id: "globex",
        file: "tenants/globex.yaml",
        fields: [{ field: "limits.connectionLimit", from: 40, to: 60 }],
      },
    ]);
    assert.deepEqual(
      changes.removed.map((e) => e.id),
      ["acme", "initech"],
    );
    assert.deepEqual(changes.violations, [
      {
        rule: "removed-only-when-offboarded",
        tenant: "acme",
        file: "tenants/acme.yaml",
        message:
          "tenants/acme.yaml was removed, but tenant acme is not offboarded (state: active); removing a file is not offboarding: set state: offboarded, merge and deploy that first, then remove the file.",
      },
    ]);
    assert.deepEqual(
      report.tenants.map((t) => t.id),
      ["globex", "hooli"],
    );
  });

  it("compares with a git revision, and renders the changes in markdown", () => {
    const dir = project();
    const git = (...args: string[]) => {
      const r = spawnSync("git", args, {
        cwd: dir,
        encoding: "utf8",
        env: {
          ...process.env,
          GIT_AUTHOR_NAME: "t",
          GIT_AUTHOR_EMAIL: "t@example.com",
          GIT_COMMITTER_NAME: "t",
          GIT_COMMITTER_EMAIL: "t@example.com",
        },
      });
      assert.equal(r.status, 0, r.stderr);
    };
    git("init", "--quiet");
    git("add", ".");
    git("commit", "--quiet", "-m", "base");
    edit(dir, "tenants/acme.yaml", (t) =>
      t.replace("displayName: Acme Corporation", "displayName: Acme Corp"),
    );
    fs.writeFileSync(
      path.join(dir, "tenants", "hooli.yaml"),
      "id: hooli\ndisplayName: Hooli\ntier: premium\n",
    );

    const { status, stdout } = check(
      dir,
      "--stack",
      "local",
      "--base",
      "HEAD",
      "--format",
      "markdown",
    );
    assert.equal(status, 0, stdout);
    const lines = stdout.split("\n");
    assert.ok(lines.includes("#### Manifest changes against `HEAD`"), stdout);
    assert.ok(lines.includes("| added | hooli | tenants/hooli.yaml |"), stdout);
    assert.ok(
      lines.includes("| changed | acme | displayName: Acme Corporation → Acme Corp |"),
      stdout,
    );

    const missing = check(dir, "--stack", "local", "--base", "no-such-branch");
    assert.equal(missing.status, 2);
    assert.match(
      missing.stderr,
      /^error: --base no-such-branch is neither a folder nor a git revision here/,
    );
  });
});
