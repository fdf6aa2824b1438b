import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { Client, DatabaseError } from "pg";
import {
  CredentialsOutput,
  DECRYPT_SQL,
  ENCRYPT_SQL,
  LocalDataKeys,
  LocalOutputsCredentials,
  TenantConnector,
  TenantConnectorOptions,
  TenantDirectory,
  TenantIsolationError,
  TenantResolutionError,
  TenantSecretError,
} from "../../client";
import type { LoginKind } from "../../infra/naming";
import type { RunningCluster } from "../../tools/cluster";
import { Fleet, FleetTenant, provisionFleet } from "../../harness/fleet";

/**
 * The application library against the harness: the real program provisions three tenants on
 * two real clusters (acme and initech on standard, globex on premium), and every request made
 * through TenantConnector is checked from inside the session and from the server's side.
 */

const TENANTS: FleetTenant[] = [
  { id: "acme", tier: "standard" },
  { id: "initech", tier: "standard" },
  { id: "globex", tier: "premium" },
];
const IDS = TENANTS.map((t) => t.id);
const SUFFIX = "example.com";

let fleet: Fleet;
const connectors: TenantConnector[] = [];

beforeAll(async () => {
  fleet = await provisionFleet({ tiers: ["standard", "premium"], tenants: TENANTS });
});

afterAll(async () => {
  await Promise.all(connectors.map((c) => c.close()));
  await fleet?.stop();
});

/** A deep copy of the credentials output, so a test may rotate passwords in its own copy. */
function credentialsCopy(): CredentialsOutput {
  return JSON.parse(JSON.stringify(fleet.outputs.credentials)) as CredentialsOutput;
}

function directory(states: Record<string, { state: string }> = {}): TenantDirectory {
  return new TenantDirectory({
    tenants: fleet.outputs.tenants,
    states: Object.fromEntries(IDS.map((id) => [id, states[id] ?? { state: "active" }])),
    hostSuffix: SUFFIX,
  });
}

let appSeq = 0;
/** A connector whose connections carry an application_name of their own. */
function connector(options: Partial<TenantConnectorOptions> = {}): {
  tc: TenantConnector;
  app: string;
} {
  const app = `pgt-client-${process.pid}-${++appSeq}`;
  const tc = new TenantConnector({
    directory: directory(),
    credentials: new LocalOutputsCredentials(credentialsCopy()),
    applicationName: app,
    ...options,
  });
  connectors.push(tc);
  return { tc, app };
}

const cluster = (id: string): RunningCluster =>
  fleet.clusters[TENANTS.find((t) => t.id === id)?.tier as string];

async function asSuperuser<T>(c: RunningCluster, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await c.superuserClient();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Server backends of one application_name, per (database, user). */
async function backends(
  app: string,
): Promise<Array<{ datname: string; usename: string; n: number }>> {
  const rows: Array<{ datname: string; usename: string; n: number }> = [];
  for (const c of Object.values(fleet.clusters)) {
    rows.push(
      ...(await asSuperuser(
        c,
        async (s) =>
          (
            await s.query<{ datname: string; usename: string; n: number }>(
              "SELECT datname, usename, count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 GROUP BY 1, 2 ORDER BY 1, 2",
              [app],
            )
          ).rows,
      )),
    );
  }
  return rows;
}

async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Samples both clusters' backends of one application in turn: standard, premium, standard, ...
 * Two servers cannot be read at one instant, so the count at sample i is sample i plus the
 * backends (pid and start time) the other cluster showed both just before and just after it:
 * those existed throughout. That never overcounts, so a peak above the cap is a real excess.
 */
function sampleAcrossClusters(app: string): { stop(): Promise<{ peak: number; samples: number }> } {
  let running = true;
  let peak = 0;
  const seen: Array<Set<string>> = [];
  const clusters = [fleet.clusters.standard, fleet.clusters.premium];
  const done = (async () => {
    const admins = await Promise.all(clusters.map((c) => c.superuserClient()));
    try {
      for (let i = 0; running; i++) {
        const r = await admins[i % 2].query<{ id: string }>(
          "SELECT pid::text || '@' || backend_start::text AS id FROM pg_stat_activity WHERE application_name = $1",
          [app],
        );
        seen.push(new Set(r.rows.map((row) => row.id)));
        const n = seen.length;
        if (n >= 3) {
          const [before, now, afterwards] = [seen[n - 3], seen[n - 2], seen[n - 1]];
          peak = Math.max(peak, now.size + [...before].filter((id) => afterwards.has(id)).length);
        }
      }
    } finally {
      await Promise.all(admins.map((a) => a.end()));
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return { peak, samples: seen.length };
    },
  };
}

interface Seen {
  database: string;
  user: string;
  port: number;
}

const WHO =
  "SELECT current_database() AS database, current_user AS user, inet_server_port() AS port";

async function who(c: { query: Client["query"] }): Promise<Seen> {
  const r = await (c as Client).query<Seen>(WHO);
  return r.rows[0];
}

describe("client: each request runs in its own tenant's database as its own login", () => {
  it("resolves by customer id and by vanity host, for rw and ro, on the tenant's cluster", async () => {
    const { tc } = connector();
    for (const id of IDS) {
      for (const login of ["rw", "ro"] as const) {
        const expected = {
          database: `tenant_${id}`,
          user: `tenant_${id}_${login}`,
          port: cluster(id).port,
        };
        assert.deepEqual(await tc.withTenant(tc.resolve({ customerId: id }), login, who), expected);
        assert.deepEqual(
          await tc.withTenant(tc.resolve({ host: `${id.toUpperCase()}.${SUFFIX}.` }), login, who),
          expected,
        );
      }
    }
    assert.notEqual(cluster("acme").port, cluster("globex").port);
  });

  it("keeps 360 interleaved concurrent requests of 3 tenants x 2 logins apart, within 4 connections", async () => {
    const { tc, app } = connector({ maxConnections: 4, maxConnectionsPerTenant: 2 });
    const requests: Array<[string, LoginKind]> = [];
    for (let i = 0; i < 60; i++)
      for (const id of IDS) for (const login of ["rw", "ro"] as const) requests.push([id, login]);
    // A fixed shuffle so that neighbours differ in tenant and login.
    const order = new Map(requests.map((r, i) => [r, hash(`${r[0]}/${r[1]}/${i}`)]));
    requests.sort((a, b) => (order.get(a) as number) - (order.get(b) as number));
    let maxOpenSeen = 0;
    const sampler = sampleAcrossClusters(app);
    const results = await Promise.all(
      requests.map(([id, login], i) =>
        tc.withTenant(id, login, async (c) => {
          const first = await who(c);
          // Yield between two statements of one request: the connection must stay the same.
          await (c as Client).query("SELECT pg_sleep($1)", [(i % 3) / 1000]);
          const second = await who(c);
          maxOpenSeen = Math.max(maxOpenSeen, tc.metrics().open);
          return { id, login, first, second };
        }),
      ),
    );
    const { peak: peakBackends, samples } = await sampler.stop();
    let checked = 0;
    for (const r of results) {
      const expected = {
        database: `tenant_${r.id}`,
        user: `tenant_${r.id}_${r.login}`,
        port: cluster(r.id).port,
      };
      assert.deepEqual(r.first, expected, `${r.id}/${r.login}`);
      assert.deepEqual(r.second, expected, `${r.id}/${r.login}`);
      checked++;
    }
    assert.equal(checked, 360);
    assert.ok(maxOpenSeen <= 4, `the library held ${maxOpenSeen} connections`);
    assert.ok(samples >= 3, `only ${samples} samples`);
    assert.ok(peakBackends <= 4, `the servers saw ${peakBackends} connections at once`);
    const m = tc.metrics();
    assert.equal(m.waiting, 0);
    assert.equal(m.busy, 0);
    assert.ok(m.waits > 0, "the burst should have queued behind the cap");
    assert.ok(m.evictions > 0, "6 pools under 4 connections should have closed idle ones");
  });

  it("lets rw write and ro only read", async () => {
    const { tc } = connector();
    const email = `ro-check-${process.pid}@acme.test`;
    await tc.withTenant("acme", "rw", (c) =>
      (c as Client).query("INSERT INTO app.customers (email, name) VALUES ($1, 'Ro Check')", [
        email,
      ]),
    );
    const seen = await tc.withTenant(
      "acme",
      "ro",
      async (c) =>
        (
          await (c as Client).query<{ n: number }>(
            "SELECT count(*)::int AS n FROM app.customers WHERE email = $1",
            [email],
          )
        ).rows[0].n,
    );
    assert.equal(seen, 1);
    for (const sql of [
      "INSERT INTO app.customers (email, name) VALUES ('x@acme.test', 'X')",
      "UPDATE app.customers SET name = 'Y'",
      "DELETE FROM app.customers",
    ]) {
      await assert.rejects(
        tc.withTenant("acme", "ro", (c) => (c as Client).query(sql)),
        (err: DatabaseError) => {
          assert.equal(err.code, "42501", sql);
          assert.equal(err.message, "permission denied for table customers");
          return true;
        },
      );
    }
    // globex's database does not hold acme's row.
    const inGlobex = await tc.withTenant(
      "globex",
      "rw",
      async (c) =>
        (
          await (c as Client).query<{ n: number }>(
            "SELECT count(*)::int AS n FROM app.customers WHERE email = $1",
            [email],
          )
        ).rows[0].n,
    );
    assert.equal(inGlobex, 0);
  });

  it("never lends a connection left inside a transaction to the next request", async () => {
    const { tc } = connector({ maxConnectionsPerTenant: 1 });
    const email = `abandoned-${process.pid}@acme.test`;
    await tc.withTenant("acme", "rw", async (c) => {
      await (c as Client).query("BEGIN");
      await (c as Client).query(
        "INSERT INTO app.customers (email, name) VALUES ($1, 'Abandoned')",
        [email],
      );
    });
    const next = await tc.withTenant("acme", "rw", async (c) => ({
      status: (c as Client).getTransactionStatus(),
      rows: (
        await (c as Client).query<{ n: number }>(
          "SELECT count(*)::int AS n FROM app.customers WHERE email = $1",
          [email],
        )
      ).rows[0].n,
    }));
    assert.deepEqual(next, { status: "I", rows: 0 });
    assert.equal(tc.metrics().connects, 2);
  });

  it("refuses unknown and offboarded tenants, also through an earlier resolved object", async () => {
    const { tc, app } = connector();
    const initech = tc.resolve({ customerId: "initech" });
    assert.deepEqual(await tc.withTenant(initech, "ro", who), {
      database: "tenant_initech",
      user: "tenant_initech_ro",
      port: cluster("initech").port,
    });
    tc.directory.update({
      tenants: fleet.outputs.tenants,
      states: {
        acme: { state: "active" },
        globex: { state: "active" },
        initech: { state: "offboarded" },
      },
    });
    tc.forget("initech");
    for (const ref of [initech, "initech"]) {
      await assert.rejects(tc.withTenant(ref, "ro", who), {
        name: "TenantResolutionError",
        message: 'customer id "initech": tenant initech is offboarded; only active tenants resolve',
      });
    }
    await assert.rejects(tc.withTenant("umbrella", "rw", who), TenantResolutionError);
    assert.throws(() => tc.resolve({ host: `acme.${SUFFIX}.evil.test` }), TenantResolutionError);
    await assert.rejects(tc.withTenant("acme", "admin" as LoginKind, who), {
      name: "TypeError",
      message: 'login must be "rw" or "ro", got "admin"',
    });
    await waitFor(
      "initech's idle connection to close",
      () => (tc.metrics().tenants.initech?.open ?? 0) === 0,
    );
    assert.deepEqual(
      (await backends(app)).filter((r) => r.datname === "tenant_initech"),
      [],
    );
  });

  it("refuses credentials that name another tenant's database or login, before connecting", async () => {
    const swapped = credentialsCopy();
    swapped.acme.rw = swapped.initech.rw;
    swapped.acme.ro = {
      ...swapped.acme.ro,
      user: "tenant_initech_ro",
      password: swapped.initech.ro.password,
    };
    const { tc, app } = connector({ credentials: new LocalOutputsCredentials(swapped) });
    await assert.rejects(tc.withTenant("acme", "rw", who), {
      name: "TenantIsolationError",
      message:
        "credentials for tenant acme (rw) name database tenant_initech and user tenant_initech_rw; the stack says tenant_acme and tenant_acme_rw: refusing to connect",
    });
    await assert.rejects(tc.withTenant("acme", "ro", who), {
      name: "TenantIsolationError",
      message:
        "credentials for tenant acme (ro) name database tenant_acme and user tenant_initech_ro; the stack says tenant_acme and tenant_acme_ro: refusing to connect",
    });
    assert.deepEqual(await backends(app), []);
    assert.equal(tc.metrics().connectFailures, 2);
    assert.equal(tc.metrics().open, 0);
    // initech's own requests are unaffected.
    assert.equal((await tc.withTenant("initech", "rw", who)).user, "tenant_initech_rw");
  });
});

describe("client: caps and fair waiting", () => {
  it("holds a flooding tenant to its own cap while another tenant is served at once", async () => {
    const { tc, app } = connector({ maxConnections: 6, maxConnectionsPerTenant: 2 });
    let peakAcme = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const acme = (await backends(app))
          .filter((r) => r.datname === "tenant_acme")
          .reduce((s, r) => s + r.n, 0);
        peakAcme = Math.max(peakAcme, acme);
      }
    })();
    const flood = Array.from({ length: 30 }, () =>
      tc.withTenant("acme", "rw", (c) => (c as Client).query("SELECT pg_sleep(0.1)")),
    );
    await waitFor("acme's flood to queue", () => (tc.metrics().tenants.acme?.waiting ?? 0) > 0);
    const during = await tc.withTenant("globex", "ro", async (c) => ({
      who: await who(c),
      metrics: tc.metrics(),
    }));
    await Promise.all(flood);
    sampling = false;
    await sampler;
    assert.equal(during.who.user, "tenant_globex_ro");
    assert.ok(
      during.metrics.tenants.acme.waiting > 0,
      "globex finished while acme still had queued requests",
    );
    assert.equal(during.metrics.tenants.acme.open, 2);
    assert.equal(during.metrics.tenants.globex.waits, 0);
    assert.equal(peakAcme, 2, `the server saw ${peakAcme} connections of acme at most`);
    assert.equal(tc.metrics().tenants.acme.waits, 28);
  });

  it("gives a freed slot to a tenant using none before two chatty tenants at the global cap", async () => {
    const { tc } = connector({ maxConnections: 4, maxConnectionsPerTenant: 2 });
    const chatty = ["acme", "initech"].flatMap((id) =>
      Array.from({ length: 20 }, () =>
        tc.withTenant(id, "rw", (c) => (c as Client).query("SELECT pg_sleep(0.08)")),
      ),
    );
    await waitFor("both chatty tenants to queue", () => {
      const t = tc.metrics().tenants;
      return (t.acme?.waiting ?? 0) > 0 && (t.initech?.waiting ?? 0) > 0 && tc.metrics().open === 4;
    });
    const during = await tc.withTenant("globex", "rw", async (c) => ({
      who: await who(c),
      metrics: tc.metrics(),
    }));
    await Promise.all(chatty);
    assert.equal(during.who.database, "tenant_globex");
    assert.equal(during.metrics.tenants.globex.waits, 1, "globex had to wait for the global cap");
    assert.ok(
      during.metrics.tenants.acme.waiting > 0 && during.metrics.tenants.initech.waiting > 0,
      "served before the chatty tenants drained",
    );
    assert.ok(during.metrics.open <= 4);
  });

  it("fails a request that waits longer than the acquire timeout, naming the tenant and the caps", async () => {
    const { tc } = connector({
      maxConnections: 2,
      maxConnectionsPerTenant: 1,
      acquireTimeoutMs: 100,
    });
    let release: () => void = () => undefined;
    const holding = tc.withTenant("acme", "rw", () => new Promise<void>((r) => (release = r)));
    await waitFor("the first request to hold its connection", () => tc.metrics().busy === 1);
    await assert.rejects(tc.withTenant("acme", "ro", who), {
      name: "ConnectionWaitError",
      message:
        "no ro connection for tenant acme within 100 ms (tenant: 1/1 open, all tenants: 1/2 open, 0 waiting)",
    });
    release();
    await holding;
    assert.equal(tc.metrics().tenants.acme.waitTimeouts, 1);
  });
});

describe("client: password rotation", () => {
  it("re-fetches the credentials once after 28P01 and the next request succeeds", async () => {
    const outputs = credentialsCopy();
    const credentials = new LocalOutputsCredentials(outputs);
    const { tc } = connector({ credentials });
    assert.equal((await tc.withTenant("initech", "rw", who)).user, "tenant_initech_rw");
    // A failing request closes its connection, so the next one has to authenticate anew.
    await assert.rejects(
      tc.withTenant("initech", "rw", async () => Promise.reject(new Error("app error"))),
      { message: "app error" },
    );
    await waitFor("the connection to close", () => tc.metrics().open === 0);

    const rotated = `rotated-${process.pid}-A1b2C3d4E5f6G7h8`;
    await asSuperuser(cluster("initech"), (s) =>
      s.query(`ALTER ROLE tenant_initech_rw PASSWORD ${s.escapeLiteral(rotated)}`),
    );
    credentials.update({
      ...outputs,
      initech: { ...outputs.initech, rw: { ...outputs.initech.rw, password: rotated } },
    });

    assert.equal((await tc.withTenant("initech", "rw", who)).user, "tenant_initech_rw");
    // Two connections opened (the second after one re-fetch), none failed.
    assert.deepEqual(
      [tc.metrics().authRetries, tc.metrics().connects, tc.metrics().connectFailures],
      [1, 2, 0],
    );
  });

  it("fails with 28P01 after one re-fetch when the secret was not updated, without the password", async () => {
    const outputs = credentialsCopy();
    const { tc } = connector({ credentials: new LocalOutputsCredentials(outputs) });
    const rotated = `rotated-again-${process.pid}-Z9y8X7w6`;
    await asSuperuser(cluster("globex"), (s) =>
      s.query(`ALTER ROLE tenant_globex_ro PASSWORD ${s.escapeLiteral(rotated)}`),
    );
    await assert.rejects(tc.withTenant("globex", "ro", who), (err: DatabaseError) => {
      assert.equal(err.code, "28P01");
      assert.equal(err.message, 'password authentication failed for user "tenant_globex_ro"');
      assert.ok(
        !JSON.stringify({ ...err, message: err.message, stack: err.stack }).includes(
          outputs.globex.ro.password,
        ),
      );
      return true;
    });
    assert.equal(tc.metrics().authRetries, 1);
    assert.equal(tc.metrics().connects, 1);
    await asSuperuser(cluster("globex"), (s) =>
      s.query(
        `ALTER ROLE tenant_globex_ro PASSWORD ${s.escapeLiteral(outputs.globex.ro.password)}`,
      ),
    );
  });
});

describe("client: per-tenant encryption with pgcrypto", () => {
  const serverLog = (id: string) =>
    fs.readFileSync(path.join(cluster(id).dataDir, "server.log"), "utf8");

  /** Sets server settings with ALTER SYSTEM and waits until new sessions see them. */
  async function configure(settings: Record<string, string>): Promise<void> {
    for (const c of Object.values(fleet.clusters)) {
      await asSuperuser(c, async (s) => {
        for (const [name, value] of Object.entries(settings)) {
          await s.query(`ALTER SYSTEM SET ${name} = ${s.escapeLiteral(value)}`);
        }
        await s.query("SELECT pg_reload_conf()");
      });
      await waitFor("the reload", async () =>
        asSuperuser(c, async (s) => {
          for (const [name, value] of Object.entries(settings)) {
            if (
              (await s.query<{ v: string }>("SELECT current_setting($1) AS v", [name])).rows[0]
                .v !== value
            )
              return false;
          }
          return true;
        }),
      );
    }
  }

  afterAll(async () => {
    for (const c of Object.values(fleet?.clusters ?? {})) {
      await asSuperuser(c, async (s) => {
        await s.query("ALTER SYSTEM RESET ALL");
        await s.query("SELECT pg_reload_conf()");
      });
    }
  });

  it("refuses to send a data key while the server logs bind parameters", async () => {
    const outputs = credentialsCopy();
    const { tc } = connector({ dataKeys: new LocalDataKeys(outputs) });
    await configure({ log_statement: "all", log_parameter_max_length: "-1" });
    await assert.rejects(
      tc.withTenant("acme", "rw", (c) => tc.encrypt(c, "acme", "never sent")),
      {
        name: "TenantSecretError",
        message:
          "refusing to send tenant acme's data key: the server would write bind parameters to its log " +
          "(log_statement = all with log_parameter_max_length = -1); set log_parameter_max_length = 0 and " +
          "log_parameter_max_length_on_error = 0 on the cluster",
      },
    );
    const log = serverLog("acme");
    assert.ok(
      log.includes("current_setting('log_parameter_max_length', true)"),
      "statements are being logged",
    );
    assert.ok(!log.includes(dataKey(outputs, "acme")));
    assert.ok(!log.includes("never sent"));
  });

  it("round-trips a value for A; B's key does not decrypt it; the key is in neither pg_stat_activity nor the log", async () => {
    const outputs = credentialsCopy();
    const { tc, app } = connector({ dataKeys: new LocalDataKeys(outputs) });
    await configure({
      log_statement: "all",
      log_parameter_max_length: "0",
      log_parameter_max_length_on_error: "0",
    });
    const plaintext = `card 4111-1111-1111-1111 of acme ${process.pid}`;
    const activity: string[] = [];
    const sample = async () => {
      for (const c of Object.values(fleet.clusters)) {
        await asSuperuser(c, async (s) =>
          activity.push(
            ...(
              await s.query<{ query: string }>(
                "SELECT query FROM pg_stat_activity WHERE application_name = $1",
                [app],
              )
            ).rows.map((r) => r.query),
          ),
        );
      }
    };

    const { ciphertext, roundTrip, lastQuery } = await tc.withTenant("acme", "rw", async (c) => {
      const ct = await tc.encrypt(c, "acme", plaintext);
      await sample();
      const pid = (await (c as Client).query<{ pid: number }>("SELECT pg_backend_pid() AS pid"))
        .rows[0].pid;
      const pt = await tc.decrypt(c, "acme", ct);
      const last = await asSuperuser(
        cluster("acme"),
        async (s) =>
          (
            await s.query<{ query: string }>("SELECT query FROM pg_stat_activity WHERE pid = $1", [
              pid,
            ])
          ).rows[0].query,
      );
      return { ciphertext: ct, roundTrip: pt, lastQuery: last };
    });
    assert.equal(roundTrip, plaintext);
    assert.ok(Buffer.isBuffer(ciphertext) && ciphertext.length > plaintext.length);
    assert.ok(!ciphertext.toString("latin1").includes(plaintext));
    assert.equal(lastQuery, DECRYPT_SQL);
    assert.ok(
      activity.includes(ENCRYPT_SQL),
      `pg_stat_activity showed ${JSON.stringify(activity)}`,
    );

    // acme's ciphertext in globex's database, with globex's key: pgcrypto refuses it.
    await assert.rejects(
      tc.withTenant("globex", "rw", (c) => tc.decrypt(c, "globex", ciphertext)),
      (err: DatabaseError) => {
        assert.equal(err.code, "39000");
        assert.equal(err.message, "Wrong key or corrupt data");
        return true;
      },
    );
    // acme's connection never carries globex's key (nor the reverse).
    await assert.rejects(
      tc.withTenant("acme", "rw", (c) => tc.decrypt(c, "globex", ciphertext)),
      (err: Error) =>
        err instanceof TenantIsolationError &&
        err.message === "refusing tenant globex's data key on a connection of tenant acme",
    );
    // Only the connection lent by withTenant, while its function runs.
    let leaked: unknown;
    await tc.withTenant("acme", "ro", async (c) => (leaked = c));
    await assert.rejects(tc.encrypt(leaked as Client, "acme", "x"), {
      name: "TenantIsolationError",
      message: "encrypt/decrypt take the connection withTenant lends, while its function runs",
    });
    await sample();

    const keys = [dataKey(outputs, "acme"), dataKey(outputs, "globex")];
    for (const q of activity)
      for (const k of keys) assert.ok(!q.includes(k), "a data key in pg_stat_activity.query");
    for (const id of ["acme", "globex"]) {
      const log = serverLog(id);
      assert.ok(
        log.includes(ENCRYPT_SQL) || log.includes(DECRYPT_SQL),
        `the ${id} server logged the statements`,
      );
      for (const k of keys) assert.ok(!log.includes(k), `a data key in ${id}'s server log`);
      assert.ok(!log.includes(plaintext), `the plaintext in ${id}'s server log`);
    }
    assert.ok(
      serverLog("globex").includes("Wrong key or corrupt data"),
      "the failed decrypt was logged, without its parameters",
    );
  });

  it("needs a data key provider for the helpers", async () => {
    const { tc } = connector();
    await assert.rejects(
      tc.withTenant("acme", "rw", (c) => tc.encrypt(c, "acme", "x")),
      {
        message: "encrypt/decrypt need a data key provider: pass dataKeys to the TenantConnector",
      },
    );
  });

  it("fails with the tenant named when the local output has no data key", async () => {
    const outputs = credentialsCopy();
    delete (outputs.globex as { dataKey?: string }).dataKey;
    const { tc } = connector({ dataKeys: new LocalDataKeys(outputs) });
    await assert.rejects(
      tc.withTenant("globex", "rw", (c) => tc.encrypt(c, "globex", "x")),
      (err: Error) => {
        assert.ok(err instanceof TenantSecretError);
        assert.equal(err.message, "the credentials output has no dataKey for tenant globex");
        return true;
      },
    );
  });
});

function dataKey(outputs: CredentialsOutput, id: string): string {
  const key = outputs[id].dataKey;
  assert.ok(key !== undefined && key.length >= 40, `tenant ${id} has a data key`);
  return key;
}

/** A small deterministic string hash (FNV-1a), for a fixed shuffle. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
