import * as pg from "pg";
import type { LoginKind } from "../infra/naming";
import { CredentialsCache, CredentialsProvider, LoginCredentials } from "./credentials";
import { DECRYPT_SQL, ENCRYPT_SQL, parameterLoggingReasons, readLogSettings } from "./crypto";
import type { ResolvedTenant, TenantDirectory } from "./directory";
import { TenantIsolationError, TenantSecretError } from "./errors";
import { DataKeyCache, DataKeyProvider } from "./keys";
import type { ClientMetrics } from "./metrics";
import { Lease, TenantPools } from "./pool";
import { sslOptions, TlsTrust } from "./ssl";

/** SQLSTATE invalid_password: the cached password is stale (rotated). */
const INVALID_PASSWORD = "28P01";

/**
 * A rejected password as the server (28P01) or PgBouncer (08P01 "SASL authentication failed",
 * its protocol_violation code for every failed login) reports it.
 */
export function isPasswordRejection(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return (
    e.code === INVALID_PASSWORD ||
    (e.code === "08P01" && /SASL authentication failed/.test(e.message ?? ""))
  );
}

export interface TenantConnectorOptions {
  directory: TenantDirectory;
  credentials: CredentialsProvider;
  /** Needed for `encrypt`/`decrypt` only. */
  dataKeys?: DataKeyProvider;
  /** Server connections this process holds at most, over all tenants (default 40). */
  maxConnections?: number;
  /** Server connections one tenant holds at most, both logins together (default 10). */
  maxConnectionsPerTenant?: number;
  /** Idle connections close after this long (default 30 s). */
  idleTimeoutMs?: number;
  /** A request fails after waiting this long for a connection (default 30 s). */
  acquireTimeoutMs?: number;
  /** Opening one server connection fails after this long (default 10 s). */
  connectTimeoutMs?: number;
  /**
   * Credentials are re-fetched after this long (default 5 min), and at once after a rejected
   * password (28P01 from the server, 08P01 "SASL authentication failed" from PgBouncer).
   */
  credentialsTtlMs?: number;
  /** `application_name` of every connection, as `pg_stat_activity` shows it (default pg-tenants). */
  applicationName?: string;
  /** CA certificates for sslmode verify-ca/verify-full (default: Node's trusted CAs). */
  tls?: TlsTrust;
  /**
   * `pooler`: connect through the cluster's PgBouncer (the `tenants` output's `pooler`), with
   * the same credentials; many processes then share the tenant's bounded server connections.
   * Default `cluster`: straight to the cluster.
   */
  via?: "cluster" | "pooler";
}

/** The connection a request's function receives: query it; do not end it. */
export type TenantClient = pg.ClientBase;

/**
 * The application's way into tenant databases: `withTenant` lends a connection of exactly one
 * tenant's database, authenticated as exactly that tenant's rw or ro login, and checks both
 * when the connection opens. Credentials are cached with a TTL and re-fetched once when the
 * server rejects a password; data keys stay in memory.
 */
export class TenantConnector {
  readonly directory: TenantDirectory;
  private readonly credentials: CredentialsCache;
  private readonly dataKeys?: DataKeyCache;
  private readonly pools: TenantPools;
  private readonly leases = new Map<pg.ClientBase, Lease>();
  private readonly logChecked = new WeakSet<Lease>();
  private readonly limits: { maxConnections: number; maxConnectionsPerTenant: number };
  private authRetries = 0;

  constructor(private readonly options: TenantConnectorOptions) {
    this.directory = options.directory;
    this.credentials = new CredentialsCache(
      options.credentials,
      options.credentialsTtlMs ?? 5 * 60_000,
    );
    if (options.dataKeys !== undefined) this.dataKeys = new DataKeyCache(options.dataKeys);
    this.limits = {
      maxConnections: options.maxConnections ?? 40,
      maxConnectionsPerTenant:
        options.maxConnectionsPerTenant ?? Math.min(10, options.maxConnections ?? 40),
    };
    this.pools = new TenantPools(
      {
        ...this.limits,
        idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
        acquireTimeoutMs: options.acquireTimeoutMs ?? 30_000,
      },
      (tenantId, login) => this.open(tenantId, login),
    );
  }

  /** A customer id or vanity host to its tenant (see TenantDirectory.resolve). */
  resolve(request: { customerId?: unknown; host?: unknown }): ResolvedTenant {
    return this.directory.resolve(request);
  }

  /**
   * Runs `fn` with a connection to the tenant's database as its `login` role, and returns what
   * `fn` returns. The tenant is looked up again by id, so an offboarded tenant is refused even
   * with an old ResolvedTenant. The connection goes back to the pool afterwards; if `fn` throws,
   * or leaves a transaction open, it is closed instead.
   */
  async withTenant<T>(
    tenant: ResolvedTenant | string,
    login: LoginKind,
    fn: (client: TenantClient) => Promise<T>,
  ): Promise<T> {
    if (login !== "rw" && login !== "ro") {
      throw new TypeError(`login must be "rw" or "ro", got ${JSON.stringify(login)}`);
    }
    const resolved = this.directory.byId(typeof tenant === "string" ? tenant : tenant.id);
    const lease = await this.pools.acquire(resolved.id, login);
    this.leases.set(lease.client, lease);
    let failed = true;
    try {
      const result = await fn(lease.client);
      failed = false;
      return result;
    } finally {
      this.leases.delete(lease.client);
      lease.release(failed);
    }
  }

  /**
   * Encrypts `plaintext` with the tenant's data key (pgcrypto `pgp_sym_encrypt`) over the
   * connection `withTenant` lent for that tenant. The key travels as a bind parameter, and only
   * after the server's settings show it will not write bind parameters to its log.
   */
  async encrypt(
    client: TenantClient,
    tenant: ResolvedTenant | string,
    plaintext: string,
  ): Promise<Buffer> {
    const key = await this.keyFor(client, tenant);
    const result = await client.query<{ ciphertext: Buffer }>({
      text: ENCRYPT_SQL,
      values: [plaintext, key],
    });
    return result.rows[0].ciphertext;
  }

  /** Decrypts what `encrypt` produced for the same tenant; another tenant's key fails. */
  async decrypt(
    client: TenantClient,
    tenant: ResolvedTenant | string,
    ciphertext: Buffer,
  ): Promise<string> {
    const key = await this.keyFor(client, tenant);
    const result = await client.query<{ plaintext: string }>({
      text: DECRYPT_SQL,
      values: [ciphertext, key],
    });
    return result.rows[0].plaintext;
  }

  /** Connection counts per tenant and in total, and how often requests waited. */
  metrics(): ClientMetrics {
    return { ...this.pools.snapshot(), ...this.limits, authRetries: this.authRetries };
  }

  /** Forgets cached credentials and data keys, e.g. after an offboarding; closes idle connections. */
  forget(tenantId: string): void {
    for (const login of ["rw", "ro"] as const) this.credentials.invalidate(tenantId, login);
    this.dataKeys?.forget(tenantId);
    this.pools.closeIdle(tenantId);
  }

  /** Fails waiting requests, closes every connection once returned, and drops cached secrets. */
  async close(): Promise<void> {
    await this.pools.end();
    this.credentials.clear();
    this.dataKeys?.forget();
  }

  private async keyFor(client: TenantClient, tenant: ResolvedTenant | string): Promise<string> {
    if (this.dataKeys === undefined) {
      throw new Error(
        "encrypt/decrypt need a data key provider: pass dataKeys to the TenantConnector",
      );
    }
    const lease = this.leases.get(client);
    const resolved = this.directory.byId(typeof tenant === "string" ? tenant : tenant.id);
    if (lease === undefined) {
      throw new TenantIsolationError(
        "encrypt/decrypt take the connection withTenant lends, while its function runs",
      );
    }
    if (lease.tenantId !== resolved.id) {
      throw new TenantIsolationError(
        `refusing tenant ${resolved.id}'s data key on a connection of tenant ${lease.tenantId}`,
      );
    }
    if (!this.logChecked.has(lease)) {
      const reasons = parameterLoggingReasons(await readLogSettings(client));
      if (reasons.length > 0) {
        throw new TenantSecretError(
          `refusing to send tenant ${resolved.id}'s data key: the server would write bind parameters to its log ` +
            `(${reasons.join("; ")}); set log_parameter_max_length = 0 and log_parameter_max_length_on_error = 0 on the cluster`,
        );
      }
      this.logChecked.add(lease);
    }
    return this.dataKeys.get(resolved);
  }

  /** Opens one connection: credentials checked against the directory, then the session itself. */
  private async open(tenantId: string, login: LoginKind): Promise<pg.Client> {
    const tenant = this.directory.byId(tenantId);
    try {
      return await this.connectAs(tenant, login, await this.credentials.get(tenantId, login));
    } catch (err) {
      if (!isPasswordRejection(err)) throw err;
      // The password was rotated since it was cached: fetch it once more, and try once more.
      this.authRetries++;
      this.credentials.invalidate(tenantId, login);
      return await this.connectAs(tenant, login, await this.credentials.get(tenantId, login));
    }
  }

  private async connectAs(
    tenant: ResolvedTenant,
    login: LoginKind,
    creds: LoginCredentials,
  ): Promise<pg.Client> {
    const expected = { database: tenant.database, user: tenant.logins[login] };
    if (creds.database !== expected.database || creds.user !== expected.user) {
      throw new TenantIsolationError(
        `credentials for tenant ${tenant.id} (${login}) name database ${creds.database} and user ${creds.user}; ` +
          `the stack says ${expected.database} and ${expected.user}: refusing to connect`,
      );
    }
    const endpoint = this.options.via === "pooler" ? tenant.pooler : creds;
    if (endpoint === undefined) {
      throw new Error(
        `tenant ${tenant.id}'s cluster ${tenant.cluster} has no pooler in the stack's tenants output; connect with via: "cluster"`,
      );
    }
    const client = new pg.Client({
      host: endpoint.host,
      port: endpoint.port,
      database: creds.database,
      user: creds.user,
      password: creds.password,
      ssl: sslOptions(creds.sslmode, this.options.tls),
      application_name: this.options.applicationName ?? "pg-tenants",
      connectionTimeoutMillis: this.options.connectTimeoutMs ?? 10_000,
    });
    // Errors of a connection that failed to open arrive through connect(); keep the process up.
    client.on("error", () => undefined);
    try {
      await client.connect();
      const who = await client.query<{ database: string; user: string }>(
        "SELECT current_database() AS database, current_user AS user",
      );
      const seen = who.rows[0];
      if (seen.database !== expected.database || seen.user !== expected.user) {
        throw new TenantIsolationError(
          `a connection for tenant ${tenant.id} (${login}) reached database ${seen.database} as ${seen.user}; ` +
            `expected ${expected.database} as ${expected.user}`,
        );
      }
      return client;
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
  }
}
