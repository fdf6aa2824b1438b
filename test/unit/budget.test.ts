import { describe, expect, it } from "@jest/globals";
import { parseStackConfig } from "../../infra/config";
import { buildFleetModel, clusterBudgets } from "../../infra/model";
import type { Tenant } from "../../infra/manifest";
import { runProgram } from "../../harness/program";
import { readStackFile } from "../../tools/stack";

/**
 * The connection budget: what the tenants' logins may hold together on each cluster, against
 * what the server leaves them; the program refuses a manifest over it before declaring anything.
 */

const cfg = parseStackConfig("local", readStackFile("local").raw);
const tenant = (id: string, tier: string, extra: Partial<Tenant> = {}): Tenant => ({
  id,
  displayName: id,
  tier,
  state: "active",
  file: `tenants/${id}.yaml`,
  ...extra,
});

describe("clusterBudgets", () => {
  it("counts both logins' limits of each active tenant, moving tenants on both clusters, offboarded ones not", () => {
    const fleet = buildFleetModel(
      [
        tenant("acme", "standard", { limits: { connectionLimit: 10 } }),
        tenant("initech", "standard", { move: { to: "premium" } }),
        tenant("globex", "premium"),
        tenant("hooli", "standard", { state: "offboarded", offboardedAt: "2026-11-01" }),
      ],
      cfg,
    );
    expect(clusterBudgets(cfg, fleet)).toEqual([
      {
        tier: "standard",
        slots: 192,
        allowed: 192,
        requested: 60,
        tenants: [
          { id: "acme", connections: 20 },
          { id: "initech", connections: 40 },
        ],
      },
      {
        tier: "premium",
        slots: 292,
        allowed: 292,
        requested: 200,
        tenants: [
          { id: "globex", connections: 100 },
          { id: "initech", connections: 100 },
        ],
      },
    ]);
  });
});

describe("the program and the budget", () => {
  it("refuses a manifest whose limits exceed a cluster's budget, naming the cluster, the figures and the fix", async () => {
    await expect(
      runProgram("local", [
        { id: "acme", tier: "standard", extra: "limits:\n  connectionLimit: 60\n" },
        { id: "initech", tier: "standard", extra: "limits:\n  connectionLimit: 40\n" },
      ]),
    ).rejects.toThrow(
      "The tenants' connection limits exceed their clusters' budget:\n  - stacks/Pulumi.local.yaml: pg-tenants:clusters.standard.server.maxConnections: the logins of 2 tenant(s) on cluster standard may hold 200 connections together (largest: acme 120, initech 80), over the 192 the cluster leaves them (max_connections 200 - 3 superuser - 5 reserved, overcommit 1): raise server.maxConnections or overcommit, lower connectionLimit, or move tenants to another tier",
    );
  });

  it("accepts the same manifest when the cluster allows overcommit", async () => {
    const file = readStackFile("local").raw;
    const clusters = file.clusters as Record<string, Record<string, unknown>>;
    const run = await runProgram(
      "local",
      [
        { id: "acme", tier: "standard", extra: "limits:\n  connectionLimit: 60\n" },
        { id: "initech", tier: "standard", extra: "limits:\n  connectionLimit: 40\n" },
      ],
      {
        clusters: {
          ...clusters,
          standard: { ...clusters.standard, server: { maxConnections: 200, overcommit: 1.5 } },
        },
      },
    );
    expect(run.mocks.byType("postgresql:index/database:Database")).toHaveLength(2);
  });
});
