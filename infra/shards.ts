import { createHash } from "crypto";
import { z } from "zod";
import type { StackConfig } from "./config";
import type { InputIssue } from "./issues";
import { TENANT_ID_PATTERN } from "./naming";

/**
 * Stack shards: which tenants of the manifest one stack declares. A deployment (the stacks that
 * manage one fleet on the same clusters) splits its tenants among its stacks by tier, by an
 * explicit list, or by a stable hash of the tenant id; every tenant must land in exactly one.
 * Everything here is pure: the program, the offline check and `npm run affected` share it.
 */

/** Most hash buckets a deployment may have; far above any sensible shard count. */
export const MAX_BUCKETS = 1024;

const tenantId = z
  .string({ error: "must be a string" })
  .regex(TENANT_ID_PATTERN, { error: "must match ^[a-z][a-z0-9_]*$ (a tenant id)" });

const TierShardSchema = z.strictObject({
  by: z.literal("tier"),
  tiers: z
    .array(z.string({ error: "must be a string" }), { error: "must list tiers" })
    .min(1, { error: "must list at least one tier" }),
});

const ListShardSchema = z.strictObject({
  by: z.literal("list"),
  tenants: z
    .array(tenantId, { error: "must list tenant ids" })
    .min(1, { error: "must list at least one tenant" }),
});

const HashShardSchema = z.strictObject({
  by: z.literal("hash"),
  buckets: z
    .number({ error: (issue) => (issue.input === undefined ? "is required" : "must be a number") })
    .int({ error: "must be a whole number" })
    .min(1, { error: `must be from 1 to ${MAX_BUCKETS}` })
    .max(MAX_BUCKETS, { error: `must be from 1 to ${MAX_BUCKETS}` }),
  bucket: z
    .number({ error: (issue) => (issue.input === undefined ? "is required" : "must be a number") })
    .int({ error: "must be a whole number" })
    .min(0, { error: "must be from 0 to buckets - 1" }),
});

/** `pg-tenants:shard`; absent means the stack declares the whole manifest. */
export const ShardSchema = z.discriminatedUnion(
  "by",
  [TierShardSchema, ListShardSchema, HashShardSchema],
  {
    error: (issue) =>
      issue.code === "invalid_union"
        ? "by must be one of tier, list, hash"
        : "must be an object { by: tier | list | hash, ... }",
  },
);

export type ShardConfig = z.output<typeof ShardSchema>;

/** The fields of a shard setting, each with the kind it belongs to, for "unknown field" messages. */
export const SHARD_FIELDS: readonly string[] = [
  "by",
  ...Object.keys(TierShardSchema.shape)
    .filter((k) => k !== "by")
    .map((k) => `${k} (by: tier)`),
  ...Object.keys(ListShardSchema.shape)
    .filter((k) => k !== "by")
    .map((k) => `${k} (by: list)`),
  ...Object.keys(HashShardSchema.shape)
    .filter((k) => k !== "by")
    .map((k) => `${k} (by: hash)`),
];

/** What sharding needs to know about a tenant. */
export interface ShardTenant {
  id: string;
  tier: string;
}

/** The part of a stack config sharding reads. */
export type ShardedStack = Pick<StackConfig, "stack" | "shard" | "clusters" | "tenantsDir">;

/**
 * The bucket of a tenant id among `buckets`: jump consistent hash (Lamping and Veach) keyed by
 * the first 8 bytes of the id's SHA-256. It depends on the id alone, never on the other
 * tenants, so adding or removing tenants moves nobody; growing from N to N+1 buckets moves only
 * about 1/(N+1) of the tenants, all of them into the new bucket.
 */
export function bucketOf(id: string, buckets: number): number {
  if (!Number.isInteger(buckets) || buckets < 1)
    throw new Error(`buckets must be a whole number >= 1, got ${buckets}`);
  let key = createHash("sha256").update(id, "utf8").digest().readBigUInt64BE(0);
  const mask = (1n << 64n) - 1n;
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    key = (key * 2862933555777941757n + 1n) & mask;
    j = Math.floor((b + 1) * (2 ** 31 / Number((key >> 33n) + 1n)));
  }
  return b;
}

/** Whether a stack with this shard declares the tenant. */
export function inShard(shard: ShardConfig | undefined, tenant: ShardTenant): boolean {
  if (shard === undefined) return true;
  switch (shard.by) {
    case "tier":
      return shard.tiers.includes(tenant.tier);
    case "list":
      return shard.tenants.includes(tenant.id);
    case "hash":
      return bucketOf(tenant.id, shard.buckets) === shard.bucket;
  }
}

/** The tenants a stack declares, in manifest order. Linear in tenants. */
export function tenantsOfShard<T extends ShardTenant>(
  cfg: Pick<StackConfig, "shard">,
  tenants: readonly T[],
): T[] {
  const shard = cfg.shard;
  if (shard === undefined) return [...tenants];
  if (shard.by === "list") {
    const listed = new Set(shard.tenants);
    return tenants.filter((t) => listed.has(t.id));
  }
  return tenants.filter((t) => inShard(shard, t));
}

/** Problems of a shard setting that the schema alone cannot see (it needs the tiers). */
export function shardConfigIssues(
  file: string,
  field: string,
  shard: ShardConfig,
  tiers: readonly string[],
): InputIssue[] {
  const issues: InputIssue[] = [];
  if (shard.by === "tier") {
    for (const tier of shard.tiers) {
      if (!tiers.includes(tier)) {
        issues.push({
          file,
          field: `${field}.tiers`,
          message: `unknown tier ${JSON.stringify(tier)}; the stack has: ${tiers.join(", ")}`,
        });
      }
    }
  }
  if (shard.by === "hash" && shard.bucket >= shard.buckets) {
    issues.push({
      file,
      field: `${field}.bucket`,
      message: `must be from 0 to ${shard.buckets - 1} (buckets - 1)`,
    });
  }
  const seen = new Set<string>();
  const values = shard.by === "tier" ? shard.tiers : shard.by === "list" ? shard.tenants : [];
  for (const v of values) {
    if (seen.has(v))
      issues.push({
        file,
        field: `${field}.${shard.by === "tier" ? "tiers" : "tenants"}`,
        message: `lists ${v} twice`,
      });
    seen.add(v);
  }
  return issues;
}

function stackFileOf(stack: string): string {
  return `stacks/Pulumi.${stack}.yaml`;
}

/** Where a cluster lives; stacks that reach one cluster manage one fleet together. */
function endpoints(cfg: ShardedStack): string[] {
  return Object.values(cfg.clusters).map((c) => `${c.host.toLowerCase()}:${c.port}`);
}

/**
 * Groups stacks into deployments: stacks that reach a common cluster (host and port) and read
 * the same tenants folder manage one fleet and must share its tenants out without overlap.
 * Each group is sorted by stack name; groups are sorted by their first stack.
 */
export function deployments<S extends ShardedStack>(stacks: readonly S[]): S[][] {
  const parent = stacks.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i])));
  const owner = new Map<string, number>();
  stacks.forEach((s, i) => {
    for (const e of endpoints(s)) {
      const key = `${s.tenantsDir}|${e}`;
      const j = owner.get(key);
      if (j === undefined) owner.set(key, i);
      else parent[find(i)] = find(j);
    }
  });
  const groups = new Map<number, S[]>();
  stacks.forEach((s, i) => {
    const root = find(i);
    groups.set(root, [...(groups.get(root) ?? []), s]);
  });
  return [...groups.values()]
    .map((g) => g.sort((a, b) => (a.stack < b.stack ? -1 : 1)))
    .sort((a, b) => (a[0].stack < b[0].stack ? -1 : 1));
}

/** The stack of each tenant within one deployment; tenants in several stacks list them all. */
export function assignment(
  stacks: readonly ShardedStack[],
  tenants: readonly ShardTenant[],
): Map<string, string[]> {
  const result = new Map<string, string[]>(tenants.map((t) => [t.id, []]));
  for (const s of stacks) {
    for (const t of tenantsOfShard(s, tenants)) result.get(t.id)?.push(s.stack);
  }
  return result;
}

/**
 * Verifies that the stacks of one deployment declare every tenant exactly once. Reports tenants
 * in no shard, tenants in several, list shards naming a tenant that has no file, and hash shards
 * that disagree on the bucket count or share a bucket. Empty when the deployment is sound.
 */
export function verifyDeployment(
  stacks: readonly ShardedStack[],
  tenants: readonly ShardTenant[],
): InputIssue[] {
  const issues: InputIssue[] = [];
  const names = stacks.map((s) => s.stack).join(", ");
  const field = "pg-tenants:shard";

  const hashed = stacks.filter((s) => s.shard?.by === "hash");
  const counts = new Set(hashed.map((s) => (s.shard as { buckets: number }).buckets));
  if (counts.size > 1) {
    for (const s of hashed) {
      issues.push({
        file: stackFileOf(s.stack),
        field: `${field}.buckets`,
        message: `hash shards of one deployment must agree on buckets; found ${hashed
          .map((h) => `${h.stack}: ${(h.shard as { buckets: number }).buckets}`)
          .join(", ")}`,
      });
    }
  }
  const bucketOwner = new Map<number, string>();
  for (const s of hashed) {
    const { bucket, buckets } = s.shard as { bucket: number; buckets: number };
    if (counts.size > 1) continue;
    const other = bucketOwner.get(bucket);
    if (other !== undefined) {
      issues.push({
        file: stackFileOf(s.stack),
        field: `${field}.bucket`,
        message: `bucket ${bucket} of ${buckets} is also declared by stack ${other}`,
      });
    } else {
      bucketOwner.set(bucket, s.stack);
    }
  }

  const known = new Set(tenants.map((t) => t.id));
  for (const s of stacks) {
    if (s.shard?.by !== "list") continue;
    for (const id of s.shard.tenants) {
      if (!known.has(id)) {
        issues.push({
          file: stackFileOf(s.stack),
          field: `${field}.tenants`,
          message: `lists ${id}, which has no tenant file`,
        });
      }
    }
  }

  for (const [id, owners] of assignment(stacks, tenants)) {
    if (owners.length === 0) {
      issues.push({
        file: `${stacks[0]?.tenantsDir ?? "tenants"}/${id}.yaml`,
        field: "",
        message: `tenant ${id} is in no shard of the deployment (stacks: ${names})`,
      });
    } else if (owners.length > 1) {
      issues.push({
        file: `${stacks[0]?.tenantsDir ?? "tenants"}/${id}.yaml`,
        field: "",
        message: `tenant ${id} is in ${owners.length} shards (${owners.join(", ")}); it must be in exactly one`,
      });
    }
  }
  return issues;
}

/** A tenant whose stack changes between two versions of a deployment's shard settings. */
export interface ShardMove {
  tenant: string;
  from: string;
  to: string;
}

/**
 * Tenants that a change of shard settings (e.g. of the bucket count) moves to another stack.
 * Such a move needs the tenant's state moved first (`pulumi state move`), or the old stack
 * plans to delete it and the new one to create what already exists.
 */
export function shardMoves(
  before: readonly ShardedStack[],
  after: readonly ShardedStack[],
  tenants: readonly ShardTenant[],
): ShardMove[] {
  const was = assignment(before, tenants);
  const now = assignment(after, tenants);
  const moves: ShardMove[] = [];
  for (const t of tenants) {
    const from = was.get(t.id) ?? [];
    const to = now.get(t.id) ?? [];
    if (from.length === 1 && to.length === 1 && from[0] !== to[0]) {
      moves.push({ tenant: t.id, from: from[0], to: to[0] });
    }
  }
  return moves;
}
