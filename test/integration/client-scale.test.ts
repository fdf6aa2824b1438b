import assert from "node:assert/strict";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { Client } from "pg";
import {
  CredentialsOutput,
  LocalOutputsCredentials,
  TenantConnector,
  TenantDirectory,
  TenantSummaryView,
} from "../../client";
import type { RunningCluster } from "../../tools/cluster";
import { provisionSqlFleet, SqlFleet } from "../../harness/sqlFleet";

/**
 * 200 tenants under one process-wide cap of 40 connections. The Pulumi harness cannot
 * provision 200 tenants on one cluster (its applier exhausts the server's 100 connection
 * slots), so they come from the SQL fleet (harness/sqlFleet.ts): SQL from the same tenant model
 * the program declares and the pg_hba.conf the program renders. The isolation tests against
 * harness-provisioned tenants are in client.test.ts.
 */

const TENANT_COUNT = 200;
const CAP = 40;
const ids = Array.from({ length: TENANT_COUNT }, (_, i) => `t${String(i).padStart(3, "0")}`);

let fleet: SqlFleet;
let cluster: RunningCluster;
let tenants: Record<string, TenantSummaryView>;
let credentials: CredentialsOutput;
let provisionMs = 0;
const connectors: TenantConnector[] = [];

beforeAll(async () => {
  const started = Date.now();
  fleet = await provisionSqlFleet({ ids, connectionLimit: 20 });
  assert.equal(fleet.models.length, TENANT_COUNT);
  cluster = fleet.cluster;
  tenants = Object.fromEntries(
    fleet.models.map((m) => [
      m.id,
      {
        cluster: m.tier,
        host: cluster.host,
        port: cluster.port,
        database: m.names.database,
        roles: { group: m.names.group, owner: m.names.owner, rw: m.names.rw, ro: m.names.ro },
      },
    ]),
  );
  credentials = fleet.credentials;
  provisionMs = Date.now() - started;
});

afterAll(async () => {
  await Promise.all(connectors.map((c) => c.close()));
  await fleet?.stop();
});

let appSeq = 0;
function connector(maxConnectionsPerTenant: number): { tc: TenantConnector; app: string } {
  const app = `pgt-scale-${process.pid}-${++appSeq}`;
  const tc = new TenantConnector({
    directory: new TenantDirectory({ tenants }),
    credentials: new LocalOutputsCredentials(credentials),
    maxConnections: CAP,
    maxConnectionsPerTenant,
    applicationName: app,
  });
  connectors.push(tc);
  return { tc, app };
}

/** Samples the server's count of this application's connections until stopped. */
function sampleBackends(
  app: string,
  filter = "true",
): { stop(): Promise<{ peak: number; samples: number }> } {
  let running = true;
  let peak = 0;
  let samples = 0;
  const done = (async () => {
    const admin = await cluster.superuserClient();
    try {
      while (running) {
        const r = await admin.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND ${filter}`,
          [app],
        );
        peak = Math.max(peak, r.rows[0].n);
        samples++;
      }
    } finally {
      await admin.end();
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return { peak, samples };
    },
  };
}

describe(`client: ${TENANT_COUNT} tenants under a cap of ${CAP} connections`, () => {
  it("serves a burst over every tenant and login; the server never sees more than the cap", async () => {
    const { tc, app } = connector(5);
    const sampler = sampleBackends(app);
    let peakOpen = 0;
    const started = Date.now();
    const requests = ids.flatMap((id) =>
      (["rw", "ro", "rw"] as const).map((login) => ({ id, login })),
    );
    const results = await Promise.all(
      requests.map(({ id, login }) =>
        tc.withTenant(id, login, async (c) => {
          peakOpen = Math.max(peakOpen, tc.metrics().open);
          const r = await (c as Client).query<{ database: string; user: string }>(
            "SELECT current_database() AS database, current_user AS user, pg_sleep(0.002)",
          );
          return { id, login, ...r.rows[0] };
        }),
      ),
    );
    const burstMs = Date.now() - started;
    const { peak, samples } = await sampler.stop();
    console.info(
      `provisioned ${TENANT_COUNT} tenants with SQL in ${provisionMs} ms; burst of ${requests.length} requests in ${burstMs} ms; ` +
        `server peak ${peak} connections over ${samples} samples; ${tc.metrics().connects} connects, ${tc.metrics().evictions} evictions`,
    );

    assert.equal(results.length, TENANT_COUNT * 3);
    for (const r of results) {
      assert.deepEqual(
        { database: r.database, user: r.user },
        { database: `tenant_${r.id}`, user: `tenant_${r.id}_${r.login}` },
      );
    }
    assert.ok(samples >= 3, `only ${samples} samples of pg_stat_activity during the burst`);
    assert.ok(peak <= CAP, `the server saw ${peak} connections from the library`);
    assert.ok(
      peak >= CAP / 2,
      `the burst should have pushed the library near its cap; the server saw at most ${peak}`,
    );
    assert.ok(peakOpen <= CAP, `the library held ${peakOpen} connections`);
    const m = tc.metrics();
    assert.deepEqual([m.waiting, m.busy, m.waitTimeouts, m.connectFailures], [0, 0, 0, 0]);
    assert.ok(
      m.connects >= TENANT_COUNT * 2,
      `${m.connects} connects for ${TENANT_COUNT * 2} pools`,
    );
    // Every connection opened beyond the cap was made room for by closing an idle one.
    assert.equal(m.evictions + m.idleCloses, m.connects - m.open);
    assert.ok(m.open <= CAP);
  });

  it("a tenant flooding requests stays within its own cap and the other 199 complete while it still queues", async () => {
    const { tc, app } = connector(5);
    const flooder = ids[0];
    const floodSampler = sampleBackends(app, `datname = 'tenant_${flooder}'`);
    const flood = Array.from({ length: 400 }, () =>
      tc.withTenant(flooder, "rw", (c) => (c as Client).query("SELECT pg_sleep(0.05)")),
    );
    const others = await Promise.all(
      ids.slice(1).map((id) =>
        tc.withTenant(id, "ro", async (c) => {
          const r = await (c as Client).query<{ user: string }>("SELECT current_user AS user");
          return r.rows[0].user;
        }),
      ),
    );
    const afterOthers = tc.metrics();
    await Promise.all(flood);
    const { peak } = await floodSampler.stop();

    assert.deepEqual(
      others,
      ids.slice(1).map((id) => `tenant_${id}_ro`),
    );
    assert.ok(
      afterOthers.tenants[flooder].waiting > 0,
      "the other tenants finished before the flood drained",
    );
    assert.equal(afterOthers.tenants[flooder].open, 5);
    assert.ok(peak <= 5, `the server saw ${peak} connections of the flooding tenant`);
    assert.equal(tc.metrics().tenants[flooder].waits, 395);
  });
});
