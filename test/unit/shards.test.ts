import assert from "node:assert/strict";
import { describe, it } from "@jest/globals";
import { parseStackConfig, StackConfig } from "../../infra/config";
import { InputError } from "../../infra/issues";
import {
  assignment,
  bucketOf,
  deployments,
  ShardConfig,
  shardMoves,
  ShardTenant,
  tenantsOfShard,
  verifyDeployment,
} from "../../infra/shards";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  deploymentIssues,
  listStacks,
  loadStack,
  loadStackTenants,
  readStackFile,
} from "../../tools/stack";
import { resolve } from "../../harness/mocks";
import { runProgram } from "../../harness/program";

const TIERS = ["standard", "premium"];
const FIXTURE_TENANTS = path.join(__dirname, "..", "fixtures", "tenants");
/** A fleet of `n` tenants spread over both tiers, ids as a real manifest would have them. */
function fleet(n: number, from = 0): ShardTenant[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `customer_${from + i}`,
    tier: TIERS[(from + i) % 2],
  }));
}

const local = loadStack("local");
/** A stack of the local deployment with the given shard. */
function shardStack(stack: string, shard: ShardConfig | undefined): StackConfig {
  return { ...local, stack, shard };
}
function hashStacks(buckets: number): StackConfig[] {
  return Array.from({ length: buckets }, (_, b) =>
    shardStack(`s-${b}`, { by: "hash", buckets, bucket: b }),
  );
}

describe("bucketOf", () => {
  it("is a pure function of the id: fixed values that no code change may alter", () => {
    // Changing these moves live tenants between stacks: the hash is part of the state's contract.
    assert.deepEqual(
      ["acme", "globex", "initech", "wayne", "tyrell"].map((id) => [
        bucketOf(id, 2),
        bucketOf(id, 3),
        bucketOf(id, 4),
      ]),
      [
        [1, 1, 1],
        [0, 0, 0],
        [0, 0, 0],
        [0, 2, 2],
        [1, 2, 2],
      ],
    );
    assert.equal(bucketOf("acme", 1), 0);
  });

  it("spreads 10000 ids evenly over 8 buckets (each within 10% of the mean)", () => {
    const counts = new Array(8).fill(0);
    for (const t of fleet(10000)) counts[bucketOf(t.id, 8)]++;
    for (const c of counts)
      assert.ok(Math.abs(c - 1250) < 125, `bucket sizes ${counts.join(", ")}`);
  });

  it("moves only about 1/(N+1) of the tenants when a bucket is added, all into the new bucket", () => {
    const ids = fleet(10000).map((t) => t.id);
    const moved = ids.filter((id) => bucketOf(id, 4) !== bucketOf(id, 5));
    assert.ok(moved.length > 1800 && moved.length < 2200, `moved ${moved.length} of 10000`);
    assert.deepEqual([...new Set(moved.map((id) => bucketOf(id, 5)))], [4]);
  });

  it("refuses a bucket count below 1", () => {
    assert.throws(() => bucketOf("acme", 0), {
      message: "buckets must be a whole number >= 1, got 0",
    });
  });
});

describe("tenantsOfShard", () => {
  const tenants = fleet(6);

  it("declares the whole manifest without a shard", () => {
    assert.deepEqual(tenantsOfShard({ shard: undefined }, tenants), tenants);
  });

  it("declares the tenants of the listed tiers", () => {
    assert.deepEqual(
      tenantsOfShard({ shard: { by: "tier", tiers: ["premium"] } }, tenants).map((t) => t.id),
      ["customer_1", "customer_3", "customer_5"],
    );
  });

  it("declares the listed tenants in manifest order, and none else", () => {
    assert.deepEqual(
      tenantsOfShard(
        { shard: { by: "list", tenants: ["customer_4", "customer_0", "nobody"] } },
        tenants,
      ).map((t) => t.id),
      ["customer_0", "customer_4"],
    );
  });
});

describe("every tenant in exactly one shard", () => {
  for (const buckets of [1, 2, 3, 8]) {
    it(`${buckets} hash shard(s) of 1000 tenants: each tenant in exactly one, none lost`, () => {
      const tenants = fleet(1000);
      const stacks = hashStacks(buckets);
      assert.deepEqual(verifyDeployment(stacks, tenants), []);
      const owners = assignment(stacks, tenants);
      assert.equal(owners.size, 1000);
      for (const [id, of] of owners) assert.equal(of.length, 1, `${id} is in ${of.join(", ")}`);
      const sizes = stacks.map((s) => tenantsOfShard(s, tenants).length);
      assert.equal(
        sizes.reduce((a, b) => a + b, 0),
        1000,
      );
    });
  }

  it("tier shards covering every tier", () => {
    const stacks = [
      shardStack("std", { by: "tier", tiers: ["standard"] }),
      shardStack("prem", { by: "tier", tiers: ["premium"] }),
    ];
    assert.deepEqual(verifyDeployment(stacks, fleet(10)), []);
  });

  it("the sample production stacks: globex and initech in production, acme in production-1", () => {
    const stacks = ["production", "production-1"].map((s) => loadStack(s));
    // The fixture copies of the sample tenants: a tenant added to tenants/ changes no test.
    const tenants = loadStackTenants({ ...stacks[0], tenantsDir: FIXTURE_TENANTS });
    assert.deepEqual(verifyDeployment(stacks, tenants), []);
    assert.deepEqual(
      tenantsOfShard(stacks[0], tenants).map((t) => t.id),
      ["globex", "initech"],
    );
    assert.deepEqual(
      tenantsOfShard(stacks[1], tenants).map((t) => t.id),
      ["acme"],
    );
  });

  it("groups the sample stacks into deployments by the clusters they reach", () => {
    const stacks = listStacks().map((s) => loadStack(s));
    const groups = deployments(stacks).map((g) => g.map((s) => s.stack));
    assert.deepEqual(
      groups.filter((g) => g.includes("local") || g.includes("production")),
      [["local"], ["production", "production-1"]],
    );
  });

  it("reports a tenant in no shard when a bucket has no stack", () => {
    const stacks = hashStacks(3).filter((s) => s.stack !== "s-2");
    assert.deepEqual(
      verifyDeployment(stacks, [
        { id: "wayne", tier: "standard" },
        { id: "acme", tier: "standard" },
      ]),
      [
        {
          file: "tenants/wayne.yaml",
          field: "",
          message: "tenant wayne is in no shard of the deployment (stacks: s-0, s-1)",
        },
      ],
    );
  });

  it("reports a tenant in two shards when a whole stack shares the clusters of sharded ones", () => {
    const stacks = [...hashStacks(2), shardStack("whole", undefined)];
    assert.deepEqual(verifyDeployment(stacks, [{ id: "acme", tier: "standard" }]), [
      {
        file: "tenants/acme.yaml",
        field: "",
        message: "tenant acme is in 2 shards (s-1, whole); it must be in exactly one",
      },
    ]);
  });

  it("reports hash shards that disagree on buckets, and a bucket declared twice", () => {
    const mixed = [
      shardStack("a", { by: "hash", buckets: 2, bucket: 0 }),
      shardStack("b", { by: "hash", buckets: 3, bucket: 1 }),
    ];
    const issues = verifyDeployment(mixed, []);
    assert.deepEqual(
      issues.map((i) => `${i.file}: ${i.field}: ${i.message}`),
      [
        "stacks/Pulumi.a.yaml: pg-tenants:shard.buckets: hash shards of one deployment must agree on buckets; found a: 2, b: 3",
        "stacks/Pulumi.b.yaml: pg-tenants:shard.buckets: hash shards of one deployment must agree on buckets; found a: 2, b: 3",
      ],
    );
    const twice = [
      shardStack("a", { by: "hash", buckets: 2, bucket: 0 }),
      shardStack("b", { by: "hash", buckets: 2, bucket: 0 }),
    ];
    assert.deepEqual(
      verifyDeployment(twice, []).map((i) => i.message),
      ["bucket 0 of 2 is also declared by stack a"],
    );
  });

  it("reports a list shard naming a tenant without a file", () => {
    const stacks = [shardStack("l", { by: "list", tenants: ["acme", "ghost"] })];
    assert.deepEqual(verifyDeployment(stacks, [{ id: "acme", tier: "standard" }]), [
      {
        file: "stacks/Pulumi.l.yaml",
        field: "pg-tenants:shard.tenants",
        message: "lists ghost, which has no tenant file",
      },
    ]);
  });
});

describe("stable assignment as tenants are added", () => {
  it("adding 1000 tenants to 1000 moves none of the first 1000", () => {
    const stacks = hashStacks(4);
    const before = assignment(stacks, fleet(1000));
    const after = assignment(stacks, [...fleet(1000), ...fleet(1000, 1000)]);
    for (const [id, owners] of before) assert.deepEqual(after.get(id), owners, id);
    assert.deepEqual(shardMoves(stacks, stacks, fleet(1000)), []);
  });

  it("a new bucket count lists exactly the tenants it moves", () => {
    const tenants = ["acme", "globex", "initech", "wayne", "tyrell"].map((id) => ({
      id,
      tier: "standard",
    }));
    assert.deepEqual(shardMoves(hashStacks(2), hashStacks(3), tenants), [
      { tenant: "wayne", from: "s-0", to: "s-2" },
      { tenant: "tyrell", from: "s-1", to: "s-2" },
    ]);
  });
});

describe("the shard setting", () => {
  const raw = () => readStackFile("local").raw;
  const cases: Array<[string, unknown, string[]]> = [
    [
      "an unknown kind",
      { by: "random" },
      ["pg-tenants:shard.by: by must be one of tier, list, hash"],
    ],
    [
      "not an object",
      "bucket-0",
      ["pg-tenants:shard: must be an object { by: tier | list | hash, ... }"],
    ],
    [
      "a bucket out of range",
      { by: "hash", buckets: 2, bucket: 2 },
      ["pg-tenants:shard.bucket: must be from 0 to 1 (buckets - 1)"],
    ],
    [
      "a missing bucket count",
      { by: "hash", bucket: 0 },
      ["pg-tenants:shard.buckets: is required"],
    ],
    [
      "too many buckets",
      { by: "hash", buckets: 5000, bucket: 0 },
      ["pg-tenants:shard.buckets: must be from 1 to 1024"],
    ],
    [
      "an unknown tier",
      { by: "tier", tiers: ["gold"] },
      ['pg-tenants:shard.tiers: unknown tier "gold"; the stack has: standard, premium'],
    ],
    [
      "a tenant listed twice",
      { by: "list", tenants: ["acme", "acme"] },
      ["pg-tenants:shard.tenants: lists acme twice"],
    ],
    [
      "an invalid tenant id",
      { by: "list", tenants: ["Acme"] },
      ["pg-tenants:shard.tenants.0: must match ^[a-z][a-z0-9_]*$ (a tenant id)"],
    ],
    [
      "an unknown field",
      { by: "hash", buckets: 2, bucket: 0, seed: 1 },
      [
        "pg-tenants:shard.seed: unknown field; allowed: by, tiers (by: tier), tenants (by: list), buckets (by: hash), bucket (by: hash)",
      ],
    ],
  ];
  for (const [what, shard, expected] of cases) {
    it(`refuses ${what}`, () => {
      assert.throws(
        () => parseStackConfig("local", { ...raw(), shard }),
        (e: unknown) => {
          assert.ok(e instanceof InputError);
          assert.deepEqual(
            e.issues.map((i) => `${i.field}: ${i.message}`),
            expected,
          );
          assert.ok(e.issues.every((i) => i.file === "stacks/Pulumi.local.yaml"));
          return true;
        },
      );
    });
  }

  it("is absent from the local stack, which declares the whole manifest", () => {
    assert.equal(loadStack("local").shard, undefined);
  });
});

describe("the program declares only its shard", () => {
  it("production-1 declares acme alone, and its pg_hba admits every tenant of the clusters", async () => {
    const run = await runProgram("production-1", [
      { id: "acme", tier: "standard" },
      { id: "globex", tier: "premium" },
      { id: "initech", tier: "standard" },
    ]);
    const components = run.registrations
      .filter((r) => r.type === "pg-tenants:index:Tenant")
      .map((r) => r.name);
    assert.deepEqual(components, ["acme"]);
    assert.equal(
      run.registrations.filter((r) => r.type === "postgresql:index/database:Database").length,
      1,
    );
    assert.deepEqual(Object.keys(run.outputs.tenants), ["acme"]);
    const hba = (await resolve(run.outputs.pgHba)).value;
    assert.match(
      hba.standard,
      /^hostssl tenant_acme \+tenant_acme 10\.20\.0\.0\/16 scram-sha-256$/m,
    );
    assert.match(
      hba.standard,
      /^hostssl tenant_initech \+tenant_initech 10\.20\.0\.0\/16 scram-sha-256$/m,
    );
    assert.match(
      hba.premium,
      /^hostssl tenant_globex \+tenant_globex 10\.20\.0\.0\/16 scram-sha-256$/m,
    );
  });
});

describe("deploymentIssues (what npm run check verifies over the stacks of a deployment)", () => {
  /** A project folder with the given sample stack files and the sample tenants. */
  function project(stacks: string[]): string {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "pg-tenants-shards-"));
    fs.mkdirSync(path.join(root, "stacks"));
    for (const s of stacks) {
      fs.copyFileSync(
        path.join("stacks", `Pulumi.${s}.yaml`),
        path.join(root, "stacks", `Pulumi.${s}.yaml`),
      );
    }
    fs.cpSync("tenants", path.join(root, "tenants"), { recursive: true });
    return root;
  }

  it("passes the sample production deployment: both shards present", () => {
    const root = project(["local", "production", "production-1"]);
    const cfg = loadStack("production", root);
    assert.deepEqual(deploymentIssues(cfg, loadStackTenants(cfg, root), root), []);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("reports the tenant of the missing shard when production-1 is gone", () => {
    const root = project(["local", "production"]);
    const cfg = loadStack("production", root);
    assert.deepEqual(deploymentIssues(cfg, loadStackTenants(cfg, root), root), [
      {
        file: "tenants/acme.yaml",
        field: "",
        message: "tenant acme is in no shard of the deployment (stacks: production)",
      },
    ]);
    fs.rmSync(root, { recursive: true, force: true });
  });
});
