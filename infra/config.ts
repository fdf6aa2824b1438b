import { z } from "zod";
import { InputError, InputIssue, zodIssues } from "./issues";
import { maxTenantIdLength, NAME_PREFIX_PATTERN, TENANT_ID_PATTERN } from "./naming";
import { KMS_DELETION_WINDOW_DAYS, LOGIN_CONNECTION_LIMIT_MAX, PG_INT_MAX } from "./limits";
import { SSL_MODES } from "./ssl";
import { SHARD_FIELDS, shardConfigIssues, ShardSchema } from "./shards";

/** The provider's connection pool per cluster when the stack sets none (`maxConnections`). */
export const DEFAULT_PROVIDER_CONNECTIONS = 10;

/** The Pulumi project name: the namespace of every config key (`pg-tenants:clusters`). */
export const PROJECT = "pg-tenants";

const identifier = z
  .string({ error: "must be a string" })
  .regex(/^[a-z_][a-z0-9_]*$/, { error: "must match ^[a-z_][a-z0-9_]*$" })
  .max(63, { error: "must be at most 63 bytes (PostgreSQL truncates longer names)" });

const port = z
  .number({ error: "must be a number" })
  .int({ error: "must be a whole number" })
  .min(1, { error: "must be from 1 to 65535" })
  .max(65535, { error: "must be from 1 to 65535" });

const positiveInt = (what: string, max: number) =>
  z
    .number({ error: "must be a number" })
    .int({ error: "must be a whole number" })
    .min(1, { error: `${what} must be from 1 to ${max}` })
    .max(max, { error: `${what} must be from 1 to ${max}` });

/** A timeout in milliseconds as PostgreSQL stores it (an int): 0 means none. */
const milliseconds = z
  .number({ error: "must be a number" })
  .int({ error: "must be a whole number of milliseconds" })
  .min(0, { error: `must be from 0 (no timeout) to ${PG_INT_MAX} milliseconds` })
  .max(PG_INT_MAX, { error: `must be from 0 (no timeout) to ${PG_INT_MAX} milliseconds` });

const count = (what: string, max: number) =>
  z
    .number({ error: "must be a number" })
    .int({ error: "must be a whole number" })
    .min(0, { error: `${what} must be from 0 to ${max}` })
    .max(max, { error: `${what} must be from 0 to ${max}` });

/**
 * The server settings the containment model relies on (docs/containment.md): the connection
 * budget every tenant's limits are held against, and the session limits of the cluster. Local
 * and test clusters are started with them; on managed servers they are the parameter group's,
 * and the audit compares the live values with these.
 */
const ServerSchema = z.strictObject({
  /** max_connections. */
  maxConnections: positiveInt("maxConnections", 100000).default(100),
  /** superuser_reserved_connections. */
  superuserReservedConnections: count("superuserReservedConnections", 1000).default(3),
  /**
   * reserved_connections (PostgreSQL 16+): slots only the provisioning role may take
   * (pg_use_reserved_connections). The budget keeps them free on 15 too.
   */
  reservedConnections: count("reservedConnections", 1000).default(5),
  /**
   * How far the tenants' limits may add up beyond the slots left to them: 1 is none. A cluster
   * whose tenants reach it through a pooler (which holds the server connections to its own
   * budget) may overcommit the logins' direct limits far.
   */
  overcommit: z
    .number({ error: "must be a number" })
    .min(1, { error: "must be from 1 (no overcommit) to 1000" })
    .max(1000, { error: "must be from 1 (no overcommit) to 1000" })
    .default(1),
  /** temp_file_limit in MB: a tenant cannot lift it (superuser-only setting). */
  tempFileLimitMb: positiveInt("tempFileLimitMb", 1048576).default(1024),
  /** idle_session_timeout and idle_in_transaction_session_timeout: defaults a session may lift. */
  idleSessionTimeoutMs: milliseconds.default(900000),
  idleInTransactionSessionTimeoutMs: milliseconds.default(300000),
  /** authentication_timeout in seconds: how long an unauthenticated connection holds a slot. */
  authenticationTimeoutS: z
    .number({ error: "must be a number" })
    .int({ error: "must be a whole number of seconds" })
    .min(1, { error: "must be from 1 to 600 seconds" })
    .max(600, { error: "must be from 1 to 600 seconds" })
    .default(5),
});

// Re-exported for the modules that read it with the rest of the config.
export { SSL_MODES };

const cidr = z
  .string({ error: "must be a string" })
  .regex(/^(\d{1,3}(\.\d{1,3}){3}\/\d{1,2}|[0-9a-f:]+\/\d{1,3})$/i, {
    error: "must be a CIDR such as 10.0.0.0/16 or fd00::/8",
  });

const absolutePath = z
  .string({ error: "must be a file path" })
  .regex(/^\/[^\s;#]*$/, { error: "must be an absolute path without spaces, ; or #" });

/** The pooler host's files (infra/pooler.ts `poolerFiles` has the defaults). */
const PoolerPathsSchema = z.strictObject({
  authFile: absolutePath.optional(),
  hbaFile: absolutePath.optional(),
  logFile: absolutePath.optional(),
  pidFile: absolutePath.optional(),
  /** Client TLS (hba.connectionType hostssl): the pooler's certificate and key. */
  tlsCertFile: absolutePath.optional(),
  tlsKeyFile: absolutePath.optional(),
  /** Server TLS with sslmode verify-ca/verify-full: the clusters' CA. */
  serverCaFile: absolutePath.optional(),
});

/**
 * A PgBouncer in front of the cluster (infra/pooler.ts renders its configuration from the
 * model): where applications reach it, where it connects from, and the limits of each tenant's
 * pools. Absent: the cluster has no pooler.
 */
const PoolerSchema = z.strictObject({
  /** Where applications reach the pooler (the `tenants` output carries it). */
  host: z
    .string({ error: "must be a host name or address" })
    .min(1, { error: "must not be empty" }),
  port: port.default(6432),
  /** listen_addr: the addresses PgBouncer listens on (`*` for all). */
  listenAddr: z
    .string({ error: "must be an address, a host name or *" })
    .regex(/^[A-Za-z0-9.:*_-]+(,[A-Za-z0-9.:*_-]+)*$/, {
      error: "must be addresses or host names separated by commas, or *",
    })
    .default("*"),
  /** The pooler's own addresses as the cluster sees them: pg_hba admits tenants from these too. */
  sourceCidrs: z.array(cidr).min(1, { error: "must list at least one CIDR" }),
  /** pool_size: server connections of one pool (one tenant database and one login). */
  poolSize: positiveInt("poolSize", LOGIN_CONNECTION_LIMIT_MAX).default(4),
  /** max_db_connections: server connections of one tenant, both logins together. */
  maxDbConnections: positiveInt("maxDbConnections", 2 * LOGIN_CONNECTION_LIMIT_MAX).default(6),
  /** max_user_connections of each rw and ro login (never above the login's own limit). */
  rwMaxConnections: positiveInt("rwMaxConnections", LOGIN_CONNECTION_LIMIT_MAX).default(4),
  roMaxConnections: positiveInt("roMaxConnections", LOGIN_CONNECTION_LIMIT_MAX).default(2),
  /** max_client_conn: client connections the pooler accepts in all. */
  maxClientConnections: positiveInt("maxClientConnections", 1000000).default(2000),
  /**
   * query_timeout: longer queries are cancelled by the pooler, whatever the session set. It
   * counts the time a query waits for a server connection too, so it must exceed the longest
   * statement timeout on the cluster plus queryWaitTimeoutMs. Default: exactly that plus 1 s.
   */
  queryTimeoutMs: milliseconds.optional(),
  /** query_wait_timeout: how long a query may wait for a server connection of its pool. */
  queryWaitTimeoutMs: milliseconds.default(30000),
  /**
   * idle_transaction_timeout: a client idle in a transaction longer is disconnected. Default:
   * the server's idleInTransactionSessionTimeoutMs plus 1 s (the server's bound acts first,
   * this one holds when a session lifts it), or 5 minutes when the server sets none.
   */
  idleTransactionTimeoutMs: milliseconds.optional(),
  /** server_idle_timeout: an unused server connection is closed after this long. */
  serverIdleTimeoutMs: milliseconds.default(60000),
  /** Where the pooler host keeps its files; defaults per tier under /etc/pgbouncer and /run. */
  paths: PoolerPathsSchema.prefault({}),
});

const fraction = (what: string) =>
  z
    .number({ error: "must be a number" })
    .gt(0, { error: `${what} must be above 0 and at most 1` })
    .max(1, { error: `${what} must be above 0 and at most 1` });

/**
 * Thresholds of `npm run usage -- --advise` for the tenants of this tier: over any of them a
 * tenant is advised to move up; under half of the lower tier's it could move down.
 */
const AdviceSchema = z.strictObject({
  /** The largest share of the cluster's load (statement time) one tenant should take. */
  maxLoadShare: fraction("maxLoadShare").default(0.5),
  /** Below this much statement time per second (ms/s), a tenant's share is not judged. */
  minLoadMsPerSecond: z
    .number({ error: "must be a number" })
    .min(0, { error: "must be 0 or more" })
    .default(50),
  /** The largest share of its connection limit a tenant should reach at its sampled peak. */
  maxConnectionUse: fraction("maxConnectionUse").default(0.8),
  /** The largest database a tenant of this tier should have, in MB. */
  maxSizeMb: positiveInt("maxSizeMb", 1073741824).default(10240),
  /** The tier to move up to (default: the next tier the stack declares). */
  up: identifier.optional(),
  /** The tier to move down to (default: the tier the stack declares before this one). */
  down: identifier.optional(),
});

const ClusterSchema = z.strictObject({
  host: z
    .string({ error: "must be a host name or address" })
    .min(1, { error: "must not be empty" }),
  port: port.default(5432),
  database: identifier.default("postgres"),
  username: identifier,
  sslmode: z
    .enum(SSL_MODES, { error: `must be one of ${SSL_MODES.join(", ")}` })
    .default("require"),
  maxConnections: positiveInt("maxConnections", 1000).default(DEFAULT_PROVIDER_CONNECTIONS),
  connectTimeout: positiveInt("connectTimeout", 600).default(15),
  /** Per-tier default connection limit of each login; a tenant file may lower or raise it. */
  connectionLimit: positiveInt("connectionLimit", LOGIN_CONNECTION_LIMIT_MAX).default(20),
  /** Per-tier default statement timeout of the login roles, in milliseconds. */
  statementTimeoutMs: milliseconds.optional(),
  server: ServerSchema.prefault({}),
  pooler: PoolerSchema.optional(),
  advice: AdviceSchema.prefault({}),
  /**
   * What this tier gives its logins back of what the containment model takes away
   * (infra/containment.ts CAPABILITIES): advisory locks through capped functions, large objects
   * for the rw login. Both off by default.
   */
  capabilities: z
    .strictObject({
      advisoryLocks: z.boolean({ error: "must be true or false" }).default(false),
      largeObjects: z.boolean({ error: "must be true or false" }).default(false),
    })
    .prefault({}),
});

const KMS_WINDOW = KMS_DELETION_WINDOW_DAYS;
const KMS_WINDOW_ERROR = `must be from ${KMS_WINDOW.min} to ${KMS_WINDOW.max} (the KMS limits)`;

const KeysSchema = z.strictObject({
  provider: z.enum(["local", "aws-kms"], { error: "must be local or aws-kms" }),
  aliasPrefix: z
    .string({ error: "must be a string" })
    .regex(/^[a-zA-Z0-9/_-]+$/, { error: "must match ^[a-zA-Z0-9/_-]+$" })
    .default("pg-tenants"),
  deletionWindowDays: z
    .number({ error: "must be a number" })
    .int({ error: "must be a whole number" })
    .min(KMS_WINDOW.min, { error: KMS_WINDOW_ERROR })
    .max(KMS_WINDOW.max, { error: KMS_WINDOW_ERROR })
    .default(KMS_WINDOW.awsDefault),
});

const HbaSchema = z.strictObject({
  /** `hostssl` on real clusters; `host` only where the server has no TLS (embedded local clusters). */
  connectionType: z
    .enum(["hostssl", "host"], { error: "must be hostssl or host" })
    .default("hostssl"),
  clientCidrs: z.array(cidr).min(1, { error: "must list at least one CIDR" }),
  adminCidrs: z.array(cidr).min(1, { error: "must list at least one CIDR" }),
  /** Roles besides the provisioning role that may connect from adminCidrs (e.g. the bootstrap superuser). */
  adminUsers: z.array(identifier).default([]),
});

const StackConfigSchema = z.strictObject({
  namePrefix: z
    .string({ error: "must be a string" })
    .regex(NAME_PREFIX_PATTERN, {
      error: `must match ${NAME_PREFIX_PATTERN.source} (e.g. tenant_)`,
    })
    .default("tenant_"),
  template: identifier,
  appSchemas: z
    .array(identifier)
    .min(1, { error: "must list at least one schema" })
    .default(["app"]),
  tenantsDir: z.string({ error: "must be a folder path" }).default("tenants"),
  clusters: z
    .record(z.string(), ClusterSchema, { error: "must map each tier to its cluster" })
    .superRefine((clusters, ctx) => {
      if (Object.keys(clusters).length === 0) {
        ctx.addIssue({ code: "custom", message: "must declare at least one tier" });
      }
      for (const tier of Object.keys(clusters)) {
        if (!TENANT_ID_PATTERN.test(tier)) {
          ctx.addIssue({
            code: "custom",
            path: [tier],
            message: "tier names must match ^[a-z][a-z0-9_]*$",
          });
        }
      }
    }),
  keys: KeysSchema,
  hba: HbaSchema,
  /**
   * Days an offboarded tenant's database, final dump and key are kept after `offboardedAt`
   * before `npm run offboard -- <id> --purge` may remove them.
   */
  retentionDays: z
    .number({ error: "must be a number" })
    .int({ error: "must be a whole number of days" })
    .min(0, { error: "must be 0 or more days" })
    .max(3650, { error: "must be at most 3650 days" })
    .default(30),
  /** The tenants this stack declares (see infra/shards.ts); absent: the whole manifest. */
  shard: ShardSchema.optional(),
});

export type ClusterConfig = z.output<typeof ClusterSchema>;
export type ServerConfig = z.output<typeof ServerSchema>;
/** A cluster's server settings when the stack says nothing (clusters started without a stack). */
export const DEFAULT_SERVER_CONFIG: ServerConfig = ServerSchema.parse({});
export type PoolerConfig = z.output<typeof PoolerSchema>;
export type AdviceConfig = z.output<typeof AdviceSchema>;
export type KeysConfig = z.output<typeof KeysSchema>;
export type HbaConfig = z.output<typeof HbaSchema>;

/** The validated, defaulted stack configuration, minus secrets. */
export type StackConfig = z.output<typeof StackConfigSchema> & {
  /** The stack name, used in error messages and outputs. */
  stack: string;
};

/** The config keys the program reads, without the `pg-tenants:` namespace. */
export const CONFIG_KEYS = Object.keys(StackConfigSchema.shape);
/** Config keys that hold secrets: read by the program alone (infra/programConfig.ts). */
export const SECRET_KEYS = ["clusterPasswords"];

/** Where a stack's settings live, for error messages. */
export function stackFile(stack: string): string {
  return `stacks/Pulumi.${stack}.yaml`;
}

/**
 * Validates raw stack config (keys without namespace, values already parsed from YAML/JSON).
 * Pure: used by the program, the offline check and the tools alike. Reports every problem.
 */
export function parseStackConfig(stack: string, raw: Record<string, unknown>): StackConfig {
  const file = stackFile(stack);
  const known = new Set([...CONFIG_KEYS, ...SECRET_KEYS]);
  const unknown = Object.keys(raw).filter((k) => !known.has(k));
  const issues = unknown.map((k) => ({
    file,
    field: `${PROJECT}:${k}`,
    message: `unknown setting; allowed: ${[...CONFIG_KEYS, ...SECRET_KEYS].join(", ")}`,
  }));
  const input = Object.fromEntries(Object.entries(raw).filter(([k]) => CONFIG_KEYS.includes(k)));
  const parsed = StackConfigSchema.safeParse(input);
  if (!parsed.success) {
    issues.push(
      ...zodIssues(file, parsed.error, allowedKeysAt).map((i) => ({
        ...i,
        field: `${PROJECT}:${i.field}`,
      })),
    );
  }
  if (parsed.success && parsed.data.shard !== undefined) {
    issues.push(
      ...shardConfigIssues(
        file,
        `${PROJECT}:shard`,
        parsed.data.shard,
        Object.keys(parsed.data.clusters),
      ),
    );
  }
  if (parsed.success) issues.push(...adviceTierIssues(file, parsed.data.clusters));
  if (parsed.success && maxTenantIdLength(parsed.data.namePrefix) < 1) {
    issues.push({
      file,
      field: `${PROJECT}:namePrefix`,
      message: "is too long to leave room for tenant ids",
    });
  }
  if (issues.length > 0 || !parsed.success) {
    throw new InputError(`Stack config ${file} is invalid:`, issues);
  }
  return { ...parsed.data, stack };
}

/** `advice.up`/`advice.down` must name another tier of the stack. */
function adviceTierIssues(
  file: string,
  clusters: Record<string, z.output<typeof ClusterSchema>>,
): InputIssue[] {
  const tiers = Object.keys(clusters);
  const issues: InputIssue[] = [];
  for (const [tier, cluster] of Object.entries(clusters)) {
    for (const direction of ["up", "down"] as const) {
      const to = cluster.advice[direction];
      if (to === undefined || (to !== tier && tiers.includes(to))) continue;
      issues.push({
        file,
        field: `${PROJECT}:clusters.${tier}.advice.${direction}`,
        message: `must name another tier of the stack (${tiers.filter((t) => t !== tier).join(", ") || "none"})`,
      });
    }
  }
  return issues;
}

function allowedKeysAt(path: PropertyKey[]): readonly string[] {
  if (path.length === 0) return CONFIG_KEYS;
  if (path[0] === "clusters" && path[2] === "server") return Object.keys(ServerSchema.shape);
  if (path[0] === "clusters" && path[2] === "pooler" && path[3] === "paths")
    return Object.keys(PoolerPathsSchema.shape);
  if (path[0] === "clusters" && path[2] === "pooler") return Object.keys(PoolerSchema.shape);
  if (path[0] === "clusters" && path[2] === "advice") return Object.keys(AdviceSchema.shape);
  if (path[0] === "clusters") return Object.keys(ClusterSchema.shape);
  if (path[0] === "keys") return Object.keys(KeysSchema.shape);
  if (path[0] === "hba") return Object.keys(HbaSchema.shape);
  if (path[0] === "shard") return SHARD_FIELDS;
  return [];
}
