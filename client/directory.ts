import { LOGIN_KINDS, LoginKind, TENANT_ID_PATTERN } from "../infra/naming";
import { quoteInput, TenantResolutionError } from "./errors";
import { normalizeSuffix, tenantLabel } from "./host";

/**
 * What the stack exports about one tenant in plain text (the `tenants` output, see
 * infra/components/tenant.ts TenantSummary), as an application reads it back from JSON.
 */
export interface TenantSummaryView {
  displayName?: string;
  cluster: string;
  host: string;
  port: number;
  database: string;
  roles: { group: string; owner: string; rw: string; ro: string };
  keyProvider?: string;
  keyAlias?: string;
  state?: string;
  /** The cluster's pooler (PgBouncer), where the stack declares one. */
  pooler?: { host: string; port: number };
}

/** Lifecycle state of each tenant from the manifest (`tenants/<id>.yaml` `state`). */
export type TenantStates = Record<string, { state: string }>;

export interface TenantDirectoryInput {
  /** The stack output `tenants`. */
  tenants: Record<string, TenantSummaryView>;
  /**
   * States from the manifest. When given, a tenant resolves only if it is listed here as
   * `active`; when left out, a summary's own `state` (default `active`) decides.
   */
  states?: TenantStates;
  /** Vanity host suffix(es): `example.com` makes `acme.example.com` name tenant `acme`. */
  hostSuffix?: string | readonly string[];
}

/** A tenant a request may use: its id and where its database and login roles are. */
export interface ResolvedTenant {
  readonly id: string;
  readonly cluster: string;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  /** The login role of each kind: a connection for `rw` must authenticate as exactly this. */
  readonly logins: Readonly<Record<LoginKind, string>>;
  readonly keyAlias?: string;
  /** Where the cluster's pooler listens, if the stack declares one. */
  readonly pooler?: Readonly<{ host: string; port: number }>;
}

/** The states view from validated tenant files (infra/manifest.ts `loadManifest`). */
export function statesFromManifest(
  tenants: ReadonlyArray<{ id: string; state: string }>,
): TenantStates {
  return Object.fromEntries(tenants.map((t) => [t.id, { state: t.state }]));
}

/** The only state in which a tenant's database may be used. */
export const RESOLVABLE_STATE = "active";

/**
 * Maps a customer id or a vanity host to exactly one active tenant, or throws
 * TenantResolutionError. There is no default tenant and no fallback: unknown, offboarded or
 * malformed input is an error, and hosts are compared in their exact ASCII form.
 */
export class TenantDirectory {
  private tenants = new Map<string, ResolvedTenant>();
  private states = new Map<string, string>();
  private readonly suffixes: readonly string[];

  constructor(input: TenantDirectoryInput) {
    const suffixes =
      input.hostSuffix === undefined
        ? []
        : typeof input.hostSuffix === "string"
          ? [input.hostSuffix]
          : input.hostSuffix;
    this.suffixes = suffixes.map(normalizeSuffix);
    this.update(input);
  }

  /** Replaces the tenants and states (e.g. after a deployment); the suffixes stay. */
  update(input: Pick<TenantDirectoryInput, "tenants" | "states">): void {
    const tenants = new Map<string, ResolvedTenant>();
    const states = new Map<string, string>();
    for (const [id, summary] of Object.entries(input.tenants)) {
      tenants.set(id, toResolved(id, summary));
      const state =
        input.states === undefined ? (summary.state ?? RESOLVABLE_STATE) : input.states[id]?.state;
      if (state !== undefined) states.set(id, state);
    }
    for (const [id, entry] of Object.entries(input.states ?? {})) {
      if (!tenants.has(id)) states.set(id, entry.state);
    }
    this.tenants = tenants;
    this.states = states;
  }

  /** The tenant of a customer id, compared exactly (ids are lower case in the manifest). */
  byId(customerId: unknown): ResolvedTenant {
    if (typeof customerId !== "string" || !TENANT_ID_PATTERN.test(customerId)) {
      throw new TenantResolutionError(
        "invalid-input",
        `customer id ${quoteInput(customerId)} is not a tenant id (^[a-z][a-z0-9_]*$)`,
      );
    }
    return this.lookup(customerId, `customer id ${quoteInput(customerId)}`);
  }

  /** The tenant of a request's host (`Host` header, with or without port), e.g. `acme.example.com`. */
  byHost(host: unknown): ResolvedTenant {
    if (this.suffixes.length === 0) {
      throw new Error(
        "cannot resolve hosts: no hostSuffix was configured for the tenant directory",
      );
    }
    const label = tenantLabel(host as string, this.suffixes);
    if (!TENANT_ID_PATTERN.test(label)) {
      throw new TenantResolutionError("unknown-tenant", `host ${quoteInput(host)} names no tenant`);
    }
    return this.lookup(label, `host ${quoteInput(host)}`);
  }

  /** Either form: `{ customerId }` or `{ host }`, exactly one of them. */
  resolve(request: { customerId?: unknown; host?: unknown }): ResolvedTenant {
    const hasId = request.customerId !== undefined;
    const hasHost = request.host !== undefined;
    if (hasId === hasHost) {
      throw new TenantResolutionError("invalid-input", "give exactly one of customerId or host");
    }
    return hasId ? this.byId(request.customerId) : this.byHost(request.host);
  }

  /** The ids that currently resolve, sorted. */
  activeIds(): string[] {
    return [...this.tenants.keys()].filter((id) => this.states.get(id) === RESOLVABLE_STATE).sort();
  }

  private lookup(id: string, what: string): ResolvedTenant {
    const tenant = this.tenants.get(id);
    const state = this.states.get(id);
    if (tenant === undefined) {
      throw new TenantResolutionError(
        "unknown-tenant",
        state === undefined
          ? `${what} names no tenant`
          : `${what}: tenant ${id} is not provisioned in this stack`,
      );
    }
    if (state === undefined) {
      throw new TenantResolutionError(
        "unknown-tenant",
        `${what}: tenant ${id} is not in the manifest`,
      );
    }
    if (state !== RESOLVABLE_STATE) {
      throw new TenantResolutionError(
        "not-active",
        `${what}: tenant ${id} is ${state}; only active tenants resolve`,
      );
    }
    return tenant;
  }
}

function toResolved(id: string, s: TenantSummaryView): ResolvedTenant {
  if (!TENANT_ID_PATTERN.test(id)) {
    throw new Error(`tenants output: ${quoteInput(id)} is not a tenant id (^[a-z][a-z0-9_]*$)`);
  }
  const missing = ["host", "port", "database", "roles"].filter(
    (k) => s[k as keyof TenantSummaryView] === undefined,
  );
  missing.push(
    ...LOGIN_KINDS.filter((l) => typeof s.roles?.[l] !== "string").map((l) => `roles.${l}`),
  );
  if (missing.length > 0) {
    throw new Error(`tenants output: tenant ${id} lacks ${[...new Set(missing)].join(", ")}`);
  }
  return Object.freeze({
    id,
    cluster: s.cluster,
    host: s.host,
    port: Number(s.port),
    database: s.database,
    logins: Object.freeze({ rw: s.roles.rw, ro: s.roles.ro }),
    ...(s.keyAlias !== undefined ? { keyAlias: s.keyAlias } : {}),
    ...(s.pooler !== undefined
      ? { pooler: Object.freeze({ host: s.pooler.host, port: Number(s.pooler.port) }) }
      : {}),
  });
}
