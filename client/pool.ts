import type * as pg from "pg";
import type { LoginKind } from "../infra/naming";
import { ConnectionWaitError } from "./errors";

/** Connection limits of one process, across every tenant it serves. */
export interface PoolLimits {
  /** Server connections this process keeps open at most, over all tenants and logins. */
  maxConnections: number;
  /** Server connections one tenant (both logins together) may hold at most. */
  maxConnectionsPerTenant: number;
  /** An idle connection is closed after this long unused. */
  idleTimeoutMs: number;
  /** A request waiting this long for a connection fails with ConnectionWaitError. */
  acquireTimeoutMs: number;
}

/** Opens one authenticated server connection for a tenant's login. */
export type Connector = (tenantId: string, login: LoginKind) => Promise<pg.Client>;

/** A connection lent to one request. `release` returns it; `destroy` closes it instead. */
export interface Lease {
  readonly client: pg.Client;
  readonly tenantId: string;
  readonly login: LoginKind;
  release(destroy?: boolean): void;
}

interface Conn {
  client: pg.Client;
  pool: LoginPool;
  lastUsed: number;
  broken: boolean;
  closing: boolean;
}

interface Waiter {
  seq: number;
  pool: LoginPool;
  since: number;
  done: boolean;
  timer?: NodeJS.Timeout;
  resolve(lease: Lease): void;
  reject(err: Error): void;
}

/** The pool of one (tenant, login): its idle connections and its queue. */
interface LoginPool {
  key: string;
  tenantId: string;
  login: LoginKind;
  idle: Conn[];
  /** Lent out or being opened. */
  busy: number;
  /** Every connection that exists: idle, busy, opening or closing. */
  open: number;
  waiters: Waiter[];
  lastUsed: number;
}

interface TenantCounters {
  open: number;
  busy: number;
  waiting: number;
  waits: number;
  waitTimeouts: number;
  /** Idle connections being closed to make room under this tenant's own cap. */
  evicting: number;
}

export interface PoolCounters {
  open: number;
  busy: number;
  idle: number;
  waiting: number;
  /** Requests that had to queue for a connection, since start. */
  waits: number;
  waitTimeouts: number;
  /** Milliseconds requests spent queued, summed. */
  waitMs: number;
  connects: number;
  connectFailures: number;
  /** Idle connections closed to make room for another tenant or login. */
  evictions: number;
  idleCloses: number;
}

export interface PoolSnapshot extends PoolCounters {
  tenants: Record<
    string,
    {
      open: number;
      busy: number;
      idle: number;
      waiting: number;
      waits: number;
      waitTimeouts: number;
    }
  >;
}

/**
 * Connection pools per (tenant, login) under two caps: a global one on the server connections
 * this process holds, and one per tenant, so a chatty tenant queues behind its own cap while
 * the others proceed. Waiting is fair between tenants: a freed slot goes to the waiting tenant
 * that uses the fewest connections, then to its oldest request. When the global cap is reached,
 * idle connections are closed least-recently-used first to make room, and an idle connection is
 * not reused by a request that comes after one still waiting for room. A slot is given back only once its connection has closed, so the server never sees more
 * than `maxConnections` from this process.
 */
export class TenantPools {
  private readonly pools = new Map<string, LoginPool>();
  private readonly tenants = new Map<string, TenantCounters>();
  private readonly queued = new Set<LoginPool>();
  private readonly counters: PoolCounters = {
    open: 0,
    busy: 0,
    idle: 0,
    waiting: 0,
    waits: 0,
    waitTimeouts: 0,
    waitMs: 0,
    connects: 0,
    connectFailures: 0,
    evictions: 0,
    idleCloses: 0,
  };
  private evictingForRoom = 0;
  private seq = 0;
  private dispatching = false;
  private again = false;
  private closed = false;
  private readonly drained: Array<() => void> = [];
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly limits: PoolLimits,
    private readonly connect: Connector,
    private readonly now: () => number = Date.now,
  ) {
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isInteger(value) || value < 1)
        throw new Error(`${name} must be a whole number of at least 1`);
    }
    if (limits.maxConnectionsPerTenant > limits.maxConnections) {
      throw new Error("maxConnectionsPerTenant must not exceed maxConnections");
    }
    this.sweeper = setInterval(
      () => this.closeExpiredIdle(),
      Math.min(1000, Math.ceil(limits.idleTimeoutMs / 2)),
    );
    this.sweeper.unref();
  }

  /** Waits for a connection of the tenant's login within the caps. */
  acquire(tenantId: string, login: LoginKind): Promise<Lease> {
    if (this.closed) return Promise.reject(new ConnectionWaitError("the tenant client is closed"));
    const pool = this.pool(tenantId, login);
    const tenant = this.tenant(tenantId);
    return new Promise<Lease>((resolve, reject) => {
      const waiter: Waiter = {
        seq: this.seq++,
        pool,
        since: this.now(),
        done: false,
        resolve,
        reject,
      };
      pool.waiters.push(waiter);
      this.queued.add(pool);
      this.counters.waiting++;
      tenant.waiting++;
      this.dispatch();
      if (waiter.done) return;
      this.counters.waits++;
      tenant.waits++;
      waiter.timer = setTimeout(() => this.timeOut(waiter), this.limits.acquireTimeoutMs);
      waiter.timer.unref();
    });
  }

  /** Counters for metrics: totals and per tenant. */
  snapshot(): PoolSnapshot {
    const tenants: PoolSnapshot["tenants"] = {};
    for (const [id, t] of this.tenants) {
      let idle = 0;
      for (const login of ["rw", "ro"] as const)
        idle += this.pools.get(poolKey(id, login))?.idle.length ?? 0;
      tenants[id] = {
        open: t.open,
        busy: t.busy,
        idle,
        waiting: t.waiting,
        waits: t.waits,
        waitTimeouts: t.waitTimeouts,
      };
    }
    let idle = 0;
    for (const p of this.pools.values()) idle += p.idle.length;
    return { ...this.counters, idle, tenants };
  }

  /** Closes idle connections of a tenant (e.g. once it is offboarded). */
  closeIdle(tenantId: string): void {
    for (const login of ["rw", "ro"] as const) {
      const pool = this.pools.get(poolKey(tenantId, login));
      for (const conn of [...(pool?.idle ?? [])]) this.close(conn);
    }
  }

  /** Refuses new requests, fails queued ones, and resolves once every connection has closed. */
  async end(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const pool of this.pools.values()) {
      for (const w of pool.waiters.splice(0))
        this.settleWaiter(w, new ConnectionWaitError("the tenant client is closed"));
      for (const conn of [...pool.idle]) this.close(conn);
    }
    this.queued.clear();
    if (this.counters.open === 0) return;
    await new Promise<void>((resolve) => this.drained.push(resolve));
  }

  private pool(tenantId: string, login: LoginKind): LoginPool {
    const key = poolKey(tenantId, login);
    let pool = this.pools.get(key);
    if (pool === undefined) {
      pool = {
        key,
        tenantId,
        login,
        idle: [],
        busy: 0,
        open: 0,
        waiters: [],
        lastUsed: this.now(),
      };
      this.pools.set(key, pool);
    }
    return pool;
  }

  private tenant(tenantId: string): TenantCounters {
    let t = this.tenants.get(tenantId);
    if (t === undefined) {
      t = { open: 0, busy: 0, waiting: 0, waits: 0, waitTimeouts: 0, evicting: 0 };
      this.tenants.set(tenantId, t);
    }
    return t;
  }

  private dispatch(): void {
    if (this.dispatching) {
      this.again = true;
      return;
    }
    this.dispatching = true;
    try {
      do {
        this.again = false;
        while (this.dispatchOne()) {
          // each pass serves one request; the order is recomputed after every change
        }
      } while (this.again);
    } finally {
      this.dispatching = false;
    }
  }

  /** Serves the first request, in fair-share order, that may proceed; false when none can now. */
  private dispatchOne(): boolean {
    // Fair share: the tenant using the fewest connections goes first, then the oldest request.
    const busy = (p: LoginPool) => this.tenant(p.tenantId).busy;
    const queued = [...this.queued].sort(
      (a, b) => busy(a) - busy(b) || a.waiters[0].seq - b.waiters[0].seq,
    );
    // Requests ahead in this order blocked only by the global cap: capacity they are owed.
    let owed = 0;
    for (const pool of queued) {
      const waiter = pool.waiters[0];
      const tenant = this.tenant(pool.tenantId);
      if (pool.idle.length > 0) {
        while (owed > this.evictingForRoom && this.evictLeastRecentlyUsed()) {
          // requests ahead in the order get the room first
        }
        if (pool.idle.length === 0) continue;
        this.handOut(pool.idle.pop() as Conn, this.dequeue(pool, waiter));
        return true;
      }
      if (tenant.open >= this.limits.maxConnectionsPerTenant) {
        this.makeRoomInTenant(pool, tenant);
        continue;
      }
      if (this.counters.open >= this.limits.maxConnections) {
        owed++;
        continue;
      }
      this.openFor(pool, tenant, this.dequeue(pool, waiter));
      return true;
    }
    while (owed > this.evictingForRoom && this.evictLeastRecentlyUsed()) {
      // close idle connections, least recently used first, for requests blocked by the global cap
    }
    return false;
  }

  private dequeue(pool: LoginPool, waiter: Waiter): Waiter {
    pool.waiters.shift();
    if (pool.waiters.length === 0) this.queued.delete(pool);
    waiter.done = true;
    if (waiter.timer !== undefined) clearTimeout(waiter.timer);
    this.counters.waiting--;
    this.tenant(pool.tenantId).waiting--;
    this.counters.waitMs += this.now() - waiter.since;
    return waiter;
  }

  private handOut(conn: Conn, waiter: Waiter): void {
    const pool = conn.pool;
    pool.busy++;
    this.tenant(pool.tenantId).busy++;
    this.counters.busy++;
    waiter.resolve(this.lease(conn));
  }

  private openFor(pool: LoginPool, tenant: TenantCounters, waiter: Waiter): void {
    pool.open++;
    pool.busy++;
    tenant.open++;
    tenant.busy++;
    this.counters.open++;
    this.counters.busy++;
    this.counters.connects++;
    this.connect(pool.tenantId, pool.login).then(
      (client) => {
        const conn: Conn = { client, pool, lastUsed: this.now(), broken: false, closing: false };
        client.on("error", () => {
          conn.broken = true;
          const i = pool.idle.indexOf(conn);
          if (i >= 0) this.close(conn);
        });
        waiter.resolve(this.lease(conn));
      },
      (err: Error) => {
        this.counters.connectFailures++;
        pool.open--;
        pool.busy--;
        tenant.open--;
        tenant.busy--;
        this.counters.open--;
        this.counters.busy--;
        waiter.reject(err);
        this.afterClose(pool);
      },
    );
  }

  private lease(conn: Conn): Lease {
    let released = false;
    return {
      client: conn.client,
      tenantId: conn.pool.tenantId,
      login: conn.pool.login,
      release: (destroy = false) => {
        if (released) throw new Error("connection released twice");
        released = true;
        this.giveBack(conn, destroy);
      },
    };
  }

  private giveBack(conn: Conn, destroy: boolean): void {
    const pool = conn.pool;
    pool.busy--;
    this.tenant(pool.tenantId).busy--;
    this.counters.busy--;
    conn.lastUsed = this.now();
    pool.lastUsed = conn.lastUsed;
    // A connection left inside a transaction (or failed one) is never lent again.
    if (destroy || conn.broken || this.closed || conn.client.getTransactionStatus() !== "I") {
      this.close(conn);
      return;
    }
    pool.idle.push(conn);
    this.dispatch();
  }

  /** Closes the least recently used idle connection of all pools; false if none is idle. */
  private evictLeastRecentlyUsed(): boolean {
    let victim: Conn | undefined;
    for (const pool of this.pools.values()) {
      const oldest = pool.idle[0];
      if (oldest !== undefined && (victim === undefined || oldest.lastUsed < victim.lastUsed))
        victim = oldest;
    }
    if (victim === undefined) return false;
    this.counters.evictions++;
    this.evictingForRoom++;
    this.close(victim, () => this.evictingForRoom--);
    return true;
  }

  /** A tenant at its cap that waits on one login may close an idle connection of its other login. */
  private makeRoomInTenant(pool: LoginPool, tenant: TenantCounters): void {
    if (tenant.evicting > 0) return;
    const other = this.pools.get(poolKey(pool.tenantId, pool.login === "rw" ? "ro" : "rw"));
    const victim = other?.idle[0];
    if (victim === undefined) return;
    this.counters.evictions++;
    tenant.evicting++;
    this.close(victim, () => tenant.evicting--);
  }

  private closeExpiredIdle(): void {
    const cutoff = this.now() - this.limits.idleTimeoutMs;
    for (const pool of [...this.pools.values()]) {
      for (const conn of pool.idle.filter((c) => c.lastUsed <= cutoff)) {
        this.counters.idleCloses++;
        this.close(conn);
      }
    }
  }

  /** Ends a connection; its slot is counted until the server has seen it go. */
  private close(conn: Conn, onClosed?: () => void): void {
    if (conn.closing) return;
    conn.closing = true;
    const pool = conn.pool;
    const i = pool.idle.indexOf(conn);
    if (i >= 0) pool.idle.splice(i, 1);
    conn.client
      .end()
      .catch(() => undefined)
      .finally(() => {
        pool.open--;
        this.tenant(pool.tenantId).open--;
        this.counters.open--;
        onClosed?.();
        this.afterClose(pool);
      });
  }

  private afterClose(pool: LoginPool): void {
    if (pool.open === 0 && pool.waiters.length === 0) this.pools.delete(pool.key);
    if (this.closed && this.counters.open === 0) {
      for (const resolve of this.drained.splice(0)) resolve();
    }
    this.dispatch();
  }

  private timeOut(waiter: Waiter): void {
    if (waiter.done) return;
    const pool = waiter.pool;
    const i = pool.waiters.indexOf(waiter);
    if (i >= 0) pool.waiters.splice(i, 1);
    if (pool.waiters.length === 0) this.queued.delete(pool);
    const tenant = this.tenant(pool.tenantId);
    this.counters.waitTimeouts++;
    tenant.waitTimeouts++;
    this.settleWaiter(
      waiter,
      new ConnectionWaitError(
        `no ${pool.login} connection for tenant ${pool.tenantId} within ${this.limits.acquireTimeoutMs} ms ` +
          `(tenant: ${tenant.open}/${this.limits.maxConnectionsPerTenant} open, ` +
          `all tenants: ${this.counters.open}/${this.limits.maxConnections} open, ${this.counters.waiting - 1} waiting)`,
      ),
    );
    if (pool.open === 0 && pool.waiters.length === 0) this.pools.delete(pool.key);
    this.dispatch();
  }

  private settleWaiter(waiter: Waiter, err: Error): void {
    if (waiter.done) return;
    waiter.done = true;
    if (waiter.timer !== undefined) clearTimeout(waiter.timer);
    this.counters.waiting--;
    this.tenant(waiter.pool.tenantId).waiting--;
    waiter.reject(err);
  }
}

function poolKey(tenantId: string, login: LoginKind): string {
  return `${tenantId}/${login}`;
}
