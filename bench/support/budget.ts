/**
 * Benchmarks declare fleets far larger than a real cluster of the sample stacks could hold (the
 * program refuses a manifest over a cluster's connection budget): their stack config states a
 * large server with a generous overcommit instead, as a fleet behind poolers would.
 */
export function benchBudget(raw: Record<string, unknown>): { clusters: Record<string, unknown> } {
  const clusters = (raw.clusters ?? {}) as Record<string, Record<string, unknown>>;
  return {
    clusters: Object.fromEntries(
      Object.entries(clusters).map(([tier, c]) => [
        tier,
        { ...c, server: { ...(c.server as object), maxConnections: 100000, overcommit: 1000 } },
      ]),
    ),
  };
}
