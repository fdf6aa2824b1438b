import assert from "node:assert/strict";
import { describe, it } from "@jest/globals";
import type * as pg from "pg";
import { ConnectionWaitError } from "../../client/errors";
import type { LoginKind } from "../../infra/naming";
import { Lease, PoolLimits, TenantPools } from "../../client/pool";

/**
 * The scheduler of client/pool.ts on its own: a fake connector whose connections open and close
 * only when the test says so, a clock the test moves. Every step is awaited explicitly, so the
 * order in which requests are served is exact, not a timing race (the real-connection tests are
 * in test/integration/client*.test.ts).
 */

/** A server connection of the fake: ended only when the test lets its `end()` finish. */
class FakeClient {
  public ended = false;
  public status: "I" | "T" | "E" = "I";
  private finishEnd?: () => void;
  private endCalled = false;

  constructor(
    public readonly tenantId: string,
    public readonly login: LoginKind,
    private readonly server: FakeServer,
  ) {}

  on(): this {
    return this;
  }

  getTransactionStatus(): string {
    return this.status;
  }

  end(): Promise<void> {
    this.endCalled = true;
    return new Promise((resolve) => {
      this.finishEnd = () => {
        this.ended = true;
        this.server.closed(this);
        resolve();
      };
      if (this.server.closeAtOnce) this.finishEnd();
    });
  }

  /** Lets a pending `end()` complete (the server has seen the connection go). */
  finishClose(): void {
    assert.ok(this.endCalled, `${this.tenantId}/${this.login} was not being closed`);
    this.finishEnd?.();
  }

  get closing(): boolean {
    return this.endCalled && !this.ended;
  }
}

/** What the server sees: connections opened per tenant and login, and the most at once. */
class FakeServer {
  public readonly opened: string[] = [];
  public open = 0;
  public peak = 0;
  public closeAtOnce = true;
  public failNext?: Error;
  public readonly clients: FakeClient[] = [];

  readonly connect = async (tenantId: string, login: LoginKind): Promise<pg.Client> => {
    if (this.failNext !== undefined) {
      const err = this.failNext;
      this.failNext = undefined;
      throw err;
    }
    const client = new FakeClient(tenantId, login, this);
    this.opened.push(`${tenantId}/${login}`);
    this.clients.push(client);
    this.open++;
    this.peak = Math.max(this.peak, this.open);
    return client as unknown as pg.Client;
  };

  closed(_client: FakeClient): void {
    this.open--;
  }
}

/** Lets every settled promise run its callbacks (connects and closes resolve in microtasks). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

const LIMITS: PoolLimits = {
  maxConnections: 2,
  maxConnectionsPerTenant: 2,
  idleTimeoutMs: 60_000,
  acquireTimeoutMs: 60_000,
};

function pools(limits: Partial<PoolLimits> = {}, now = () => 0) {
  const server = new FakeServer();
  const tp = new TenantPools({ ...LIMITS, ...limits }, server.connect, now);
  return { server, tp };
}

/** Starts a request and records when it is served, in order, by name. */
function request(
  tp: TenantPools,
  served: string[],
  name: string,
  tenant: string,
  login: LoginKind,
) {
  const p = tp.acquire(tenant, login).then((lease) => {
    served.push(name);
    return lease;
  });
  return p;
}

describe("client pool scheduler", () => {
  it("opens one connection per request up to the caps, then reuses an idle one", async () => {
    const { server, tp } = pools();
    const a = await tp.acquire("acme", "rw");
    assert.deepEqual(server.opened, ["acme/rw"]);
    a.release();
    const again = await tp.acquire("acme", "rw");
    assert.equal(again.client, a.client, "the idle connection is lent again");
    assert.deepEqual(server.opened, ["acme/rw"]);
    assert.equal(tp.snapshot().connects, 1);
    again.release();
    await tp.end();
  });

  it("a tenant at its own cap queues while another tenant is served at once", async () => {
    const { server, tp } = pools({ maxConnections: 3, maxConnectionsPerTenant: 1 });
    const served: string[] = [];
    const a1 = await request(tp, served, "acme-1", "acme", "rw");
    const a2 = request(tp, served, "acme-2", "acme", "rw");
    const g1 = request(tp, served, "globex-1", "globex", "rw");
    await settle();
    assert.deepEqual(served, ["acme-1", "globex-1"]);
    assert.equal(tp.snapshot().tenants.acme.waiting, 1);
    a1.release();
    await settle();
    assert.deepEqual(served, ["acme-1", "globex-1", "acme-2"]);
    assert.deepEqual(server.opened, ["acme/rw", "globex/rw"], "acme-2 reused acme-1's connection");
    (await a2).release();
    (await g1).release();
    await tp.end();
  });

  it("a freed slot goes to the waiting tenant using the fewest connections, not the oldest request", async () => {
    const { server, tp } = pools({ maxConnections: 2, maxConnectionsPerTenant: 2 });
    const served: string[] = [];
    const a1 = await request(tp, served, "acme-1", "acme", "rw");
    const a2 = await request(tp, served, "acme-2", "acme", "rw");
    const a3 = request(tp, served, "acme-3", "acme", "rw"); // older
    const g1 = request(tp, served, "globex-1", "globex", "rw"); // acme holds more
    await settle();
    assert.deepEqual(served, ["acme-1", "acme-2"]);
    a1.release();
    await settle();
    // acme's idle connection was closed to make room for globex (fewer connections in use).
    assert.deepEqual(served, ["acme-1", "acme-2", "globex-1"]);
    assert.deepEqual(server.opened, ["acme/rw", "acme/rw", "globex/rw"]);
    assert.equal(server.clients[0].ended, true);
    assert.equal(tp.snapshot().evictions, 1);
    assert.equal(tp.snapshot().tenants.acme.waiting, 1);
    (await g1).release();
    await settle();
    assert.deepEqual(served, ["acme-1", "acme-2", "globex-1", "acme-3"]);
    (await a3).release();
    a2.release();
    await tp.end();
  });

  it("gives a slot back only once the server has seen the connection close", async () => {
    const { server, tp } = pools({ maxConnections: 1, maxConnectionsPerTenant: 1 });
    server.closeAtOnce = false;
    const served: string[] = [];
    const a = await request(tp, served, "acme", "acme", "rw");
    const g = request(tp, served, "globex", "globex", "rw");
    a.release();
    await settle();
    // acme's idle connection is closing: globex still waits, the server never sees two.
    assert.equal(server.clients[0].closing, true);
    assert.deepEqual(served, ["acme"]);
    assert.equal(server.open, 1);
    server.clients[0].finishClose();
    await settle();
    assert.deepEqual(served, ["acme", "globex"]);
    assert.equal(server.peak, 1);
    server.closeAtOnce = true;
    (await g).release();
    const ending = tp.end();
    server.clients[1].finishClose();
    await ending;
  });

  it("never lends again a connection left inside a transaction", async () => {
    const { server, tp } = pools();
    const a = await tp.acquire("acme", "rw");
    (a.client as unknown as FakeClient).status = "T";
    a.release();
    await settle();
    assert.equal(server.clients[0].ended, true);
    const b = await tp.acquire("acme", "rw");
    assert.notEqual(b.client, a.client);
    assert.deepEqual(server.opened, ["acme/rw", "acme/rw"]);
    b.release(true); // destroy: closed too
    await settle();
    assert.equal(server.clients[1].ended, true);
    assert.equal(tp.snapshot().open, 0);
    await tp.end();
  });

  it("refuses a second release of the same lease", async () => {
    const { tp } = pools();
    const a: Lease = await tp.acquire("acme", "ro");
    a.release();
    assert.throws(() => a.release(), /connection released twice/);
    await tp.end();
  });

  it("fails a request that waited longer than acquireTimeoutMs, naming the caps", async () => {
    const { tp } = pools({ maxConnections: 1, maxConnectionsPerTenant: 1, acquireTimeoutMs: 20 });
    const a = await tp.acquire("acme", "rw");
    await assert.rejects(
      tp.acquire("acme", "rw"),
      new ConnectionWaitError(
        "no rw connection for tenant acme within 20 ms (tenant: 1/1 open, all tenants: 1/1 open, 0 waiting)",
      ),
    );
    const s = tp.snapshot();
    assert.equal(s.waitTimeouts, 1);
    assert.equal(s.tenants.acme.waitTimeouts, 1);
    assert.equal(s.waiting, 0);
    a.release();
    await tp.end();
  });

  it("a failed connect frees its slot and fails only its own request", async () => {
    const { server, tp } = pools({ maxConnections: 1, maxConnectionsPerTenant: 1 });
    server.failNext = new Error("connection refused");
    await assert.rejects(tp.acquire("acme", "rw"), /connection refused/);
    assert.equal(tp.snapshot().connectFailures, 1);
    assert.equal(tp.snapshot().open, 0);
    const g = await tp.acquire("globex", "rw");
    assert.deepEqual(server.opened, ["globex/rw"]);
    g.release();
    await tp.end();
  });

  it("closes connections idle for idleTimeoutMs", async () => {
    let now = 0;
    const { server, tp } = pools({ idleTimeoutMs: 10 }, () => now);
    const a = await tp.acquire("acme", "rw");
    a.release();
    now = 10;
    // The sweeper runs every min(1 s, idleTimeoutMs / 2): 5 ms here.
    await new Promise((resolve) => setTimeout(resolve, 30));
    await settle();
    assert.equal(server.clients[0].ended, true);
    assert.equal(tp.snapshot().idleCloses, 1);
    await tp.end();
  });

  it("refuses requests after end() and waits for every connection to close", async () => {
    const { server, tp } = pools();
    const a = await tp.acquire("acme", "rw");
    a.release();
    await tp.end();
    assert.equal(server.open, 0);
    await assert.rejects(
      tp.acquire("acme", "rw"),
      new ConnectionWaitError("the tenant client is closed"),
    );
  });

  it("refuses limits that are not whole numbers, or a tenant cap above the global one", () => {
    const server = new FakeServer();
    assert.throws(
      () => new TenantPools({ ...LIMITS, maxConnections: 0 }, server.connect),
      /maxConnections must be a whole number of at least 1/,
    );
    assert.throws(
      () => new TenantPools({ ...LIMITS, maxConnectionsPerTenant: 3 }, server.connect),
      /maxConnectionsPerTenant must not exceed maxConnections/,
    );
  });
});
