import type { ClusterConfig, PoolerConfig, StackConfig } from "./config";
import { FleetModel, TenantModel, tenantsOnTier } from "./model";
import type { LoginKind } from "./naming";

/**
 * PgBouncer in front of a cluster, rendered from the tenant model (pure: no Pulumi runtime).
 * One `[databases]` entry per active tenant with its pool limits, one `[users]` entry per login,
 * an auth file of the logins' SCRAM verifiers (the same strings the program sets as their
 * passwords, so PgBouncer passes each client's authentication through to the server), and a
 * PgBouncer hba that admits each tenant's logins to that tenant's database only. There is no
 * `*` database, no admin or stats user: any other database is "no such database" and the
 * console refuses every tenant.
 *
 * Pools are per database and login, and a tenant's logins are its own: nothing is shared
 * between tenants. What the pooler shares is a tenant's server connections between the many
 * client connections of its application processes (transaction pooling).
 */

/**
 * Transaction pooling: a server connection is lent for one transaction. The client library
 * sends only unnamed statements and no session state (no SET, LISTEN, advisory locks or
 * temporary tables), which is what transaction pooling requires; session pooling would pin a
 * server connection to each idle client and share nothing.
 */
export const POOL_MODE = "transaction";

/** Margin of the pooler's timeouts over the server's: the server's own error comes first. */
export const POOLER_TIMEOUT_MARGIN_MS = 1000;

/** idle_transaction_timeout when the cluster sets no idle-in-transaction timeout. */
export const DEFAULT_IDLE_TRANSACTION_TIMEOUT_MS = 300000;

/** The pooler host's files. */
export interface PoolerFiles {
  authFile: string;
  hbaFile: string;
  logFile: string;
  pidFile: string;
  tlsCertFile: string;
  tlsKeyFile: string;
  serverCaFile: string;
}

/** The files of a tier's pooler: the stack's `pooler.paths`, else per tier under /etc/pgbouncer and /run. */
export function poolerFiles(tier: string, pooler: PoolerConfig): PoolerFiles {
  const dir = `/etc/pgbouncer/${tier}`;
  const p = pooler.paths;
  return {
    authFile: p.authFile ?? `${dir}/userlist.txt`,
    hbaFile: p.hbaFile ?? `${dir}/pgbouncer_hba.conf`,
    logFile: p.logFile ?? `/var/log/postgresql/pgbouncer-${tier}.log`,
    pidFile: p.pidFile ?? `/run/postgresql/pgbouncer-${tier}.pid`,
    tlsCertFile: p.tlsCertFile ?? `${dir}/server.crt`,
    tlsKeyFile: p.tlsKeyFile ?? `${dir}/server.key`,
    serverCaFile: p.serverCaFile ?? `${dir}/cluster-ca.crt`,
  };
}

/** One login's pool limit. */
export interface PooledLogin {
  kind: LoginKind;
  user: string;
  /** max_user_connections: the tier's limit for the kind, never above the login's own limit. */
  maxUserConnections: number;
}

/** One tenant database behind the pooler. */
export interface PooledDatabase {
  tenant: string;
  database: string;
  /** pool_size: server connections of each (database, login) pool. */
  poolSize: number;
  /** max_db_connections: server connections of the database, both logins together. */
  maxDbConnections: number;
  logins: PooledLogin[];
}

/** Everything a cluster's pooler configuration says, as data. */
export interface PoolerSpec {
  tier: string;
  listen: { addr: string; port: number };
  /** Where applications reach the pooler. */
  endpoint: { host: string; port: number };
  server: { host: string; port: number; sslmode: ClusterConfig["sslmode"] };
  databases: PooledDatabase[];
  /**
   * The most server connections the pooler opens: the sum of max_db_connections (PgBouncer has
   * no cluster-wide cap; this sum is what is held against the cluster's connection budget).
   */
  serverConnections: number;
  timeouts: {
    queryMs: number;
    queryWaitMs: number;
    idleTransactionMs: number;
    serverIdleMs: number;
  };
  /** The longest statement timeout of a login on the cluster (0: none). */
  longestStatementTimeoutMs: number;
  maxClientConnections: number;
  /** Who may connect to the pooler: the stack's client networks, as pg_hba admits them. */
  clients: { connectionType: "host" | "hostssl"; cidrs: string[] };
  files: PoolerFiles;
}

/** Per kind, the pooler config key of its max_user_connections. */
const LOGIN_LIMIT_KEY: Record<LoginKind, "rwMaxConnections" | "roMaxConnections"> = {
  rw: "rwMaxConnections",
  ro: "roMaxConnections",
};

/** The pool limits of one tenant on a pooler with these settings. */
export function pooledDatabase(model: TenantModel, pooler: PoolerConfig): PooledDatabase {
  const logins: PooledLogin[] = [];
  for (const role of model.roles) {
    if (!role.login || (role.kind !== "rw" && role.kind !== "ro")) continue;
    logins.push({
      kind: role.kind,
      user: role.name,
      maxUserConnections: Math.min(pooler[LOGIN_LIMIT_KEY[role.kind]], role.connectionLimit),
    });
  }
  const maxDbConnections = Math.min(
    pooler.maxDbConnections,
    logins.reduce((sum, l) => sum + l.maxUserConnections, 0),
  );
  return {
    tenant: model.id,
    database: model.names.database,
    poolSize: Math.min(pooler.poolSize, maxDbConnections),
    maxDbConnections,
    logins,
  };
}

/**
 * The pooler of one cluster for the tenants on it (those of its tier and those moving onto it),
 * or undefined when the cluster declares no pooler. Offboarded tenants have no entry: nobody
 * logs in as them.
 */
export function poolerSpec(
  cfg: StackConfig,
  tier: string,
  tenants: readonly TenantModel[],
): PoolerSpec | undefined {
  const cluster = cfg.clusters[tier];
  const pooler = cluster.pooler;
  if (pooler === undefined) return undefined;
  const active = [...tenants]
    .filter((t) => t.database.open)
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const databases = active.map((t) => pooledDatabase(t, pooler));
  const longest = Math.max(
    0,
    ...active.flatMap((t) => t.roles.map((r) => (r.login ? (r.statementTimeoutMs ?? 0) : 0))),
  );
  const idleInTransaction = cluster.server.idleInTransactionSessionTimeoutMs;
  return {
    tier,
    listen: { addr: pooler.listenAddr, port: pooler.port },
    endpoint: { host: pooler.host, port: pooler.port },
    server: { host: cluster.host, port: cluster.port, sslmode: cluster.sslmode },
    databases,
    serverConnections: databases.reduce((sum, d) => sum + d.maxDbConnections, 0),
    timeouts: {
      queryMs:
        pooler.queryTimeoutMs ??
        (longest > 0 ? longest + pooler.queryWaitTimeoutMs + POOLER_TIMEOUT_MARGIN_MS : 0),
      queryWaitMs: pooler.queryWaitTimeoutMs,
      idleTransactionMs:
        pooler.idleTransactionTimeoutMs ??
        (idleInTransaction > 0
          ? idleInTransaction + POOLER_TIMEOUT_MARGIN_MS
          : DEFAULT_IDLE_TRANSACTION_TIMEOUT_MS),
      serverIdleMs: pooler.serverIdleTimeoutMs,
    },
    longestStatementTimeoutMs: longest,
    maxClientConnections: pooler.maxClientConnections,
    clients: { connectionType: cfg.hba.connectionType, cidrs: [...cfg.hba.clientCidrs] },
    files: poolerFiles(tier, pooler),
  };
}

/** Every cluster's pooler (clusters without one are left out), from the whole manifest's fleet. */
export function fleetPoolers(cfg: StackConfig, fleet: FleetModel): PoolerSpec[] {
  return Object.keys(cfg.clusters)
    .map((tier) => poolerSpec(cfg, tier, tenantsOnTier(fleet, tier)))
    .filter((s): s is PoolerSpec => s !== undefined);
}

/** A problem of a pooler's settings, located in the stack config (`clusters.<tier>.pooler...`). */
export interface PoolerProblem {
  field: string;
  message: string;
}

/** Connection slots of a cluster left to tenant logins (as infra/model.ts clusterBudgets counts them). */
export function tenantSlots(cluster: ClusterConfig): number {
  const s = cluster.server;
  return s.maxConnections - s.superuserReservedConnections - s.reservedConnections;
}

const HOST_PATTERN = /^[A-Za-z0-9.:_-]+$/;

/**
 * What would make a pooler unsafe or unusable: more server connections than the cluster leaves
 * to tenant logins (PgBouncer opens all of them under a burst, so no overcommit applies), a
 * query_timeout that would cut statements the server allows (it counts queueing too), or a
 * server address PgBouncer's connection string cannot hold.
 */
export function poolerProblems(cfg: StackConfig, fleet: FleetModel): PoolerProblem[] {
  const problems: PoolerProblem[] = [];
  for (const spec of fleetPoolers(cfg, fleet)) {
    const cluster = cfg.clusters[spec.tier];
    const at = `clusters.${spec.tier}`;
    const slots = tenantSlots(cluster);
    if (spec.serverConnections > slots) {
      const s = cluster.server;
      const largest = Math.max(...spec.databases.map((d) => d.maxDbConnections));
      const fits = Math.floor(slots / spec.databases.length);
      problems.push({
        field: `${at}.pooler.maxDbConnections`,
        message:
          `the pooler may open ${spec.serverConnections} server connections (${spec.databases.length} tenant(s), up to ${largest} each) ` +
          `but cluster "${spec.tier}" leaves ${slots} to tenant logins (server.maxConnections ${s.maxConnections} - superuserReservedConnections ${s.superuserReservedConnections} - reservedConnections ${s.reservedConnections}): ` +
          (fits >= 1
            ? `lower pooler.maxDbConnections to ${fits} or less, `
            : "no per-tenant limit fits: ") +
          `raise server.maxConnections to at least ${spec.serverConnections + s.superuserReservedConnections + s.reservedConnections}, or move tenants to another cluster`,
      });
    }
    const explicitQuery = cluster.pooler?.queryTimeoutMs;
    const needed = spec.longestStatementTimeoutMs + spec.timeouts.queryWaitMs;
    if (explicitQuery !== undefined && explicitQuery > 0 && spec.longestStatementTimeoutMs > 0) {
      if (explicitQuery <= needed) {
        problems.push({
          field: `${at}.pooler.queryTimeoutMs`,
          message: `must be above ${needed} ms: the longest statement timeout on cluster "${spec.tier}" (${spec.longestStatementTimeoutMs} ms) plus queryWaitTimeoutMs (${spec.timeouts.queryWaitMs} ms), as PgBouncer counts the wait for a server connection in query_timeout`,
        });
      }
    }
    if (!HOST_PATTERN.test(spec.server.host)) {
      problems.push({
        field: `${at}.host`,
        message:
          "must be a host name or address (letters, digits, . : _ -) to be reachable through the pooler",
      });
    }
  }
  return problems;
}

/** Seconds as PgBouncer reads its time settings (fractions allowed). */
function seconds(ms: number): string {
  return String(Math.round(ms) / 1000);
}

/** pgbouncer.ini of a cluster's pooler. */
export function renderPgbouncerIni(spec: PoolerSpec): string {
  const f = spec.files;
  const lines = [
    `; pgbouncer.ini of the pooler of cluster "${spec.tier}", rendered by pg-tenants from the tenants manifest.`,
    "; Do not edit by hand: change tenants/ or the stack config and render again.",
    `; At most ${spec.serverConnections} server connections (the sum of max_db_connections).`,
    "",
    "[databases]",
    "; One entry per active tenant; no * entry, so any other database is unknown.",
    ...spec.databases.map(
      (d) =>
        `${d.database} = host=${spec.server.host} port=${spec.server.port} dbname=${d.database} pool_size=${d.poolSize} max_db_connections=${d.maxDbConnections}`,
    ),
    "",
    "[users]",
    ...spec.databases.flatMap((d) =>
      d.logins.map((l) => `${l.user} = max_user_connections=${l.maxUserConnections}`),
    ),
    "",
    "[pgbouncer]",
    `listen_addr = ${spec.listen.addr}`,
    `listen_port = ${spec.listen.port}`,
    "unix_socket_dir =",
    "auth_type = hba",
    `auth_hba_file = ${f.hbaFile}`,
    `auth_file = ${f.authFile}`,
    `logfile = ${f.logFile}`,
    `pidfile = ${f.pidFile}`,
    `pool_mode = ${POOL_MODE}`,
    `max_client_conn = ${spec.maxClientConnections}`,
    "reserve_pool_size = 0",
    `query_timeout = ${seconds(spec.timeouts.queryMs)}`,
    `query_wait_timeout = ${seconds(spec.timeouts.queryWaitMs)}`,
    `idle_transaction_timeout = ${seconds(spec.timeouts.idleTransactionMs)}`,
    `server_idle_timeout = ${seconds(spec.timeouts.serverIdleMs)}`,
    // A failed server login (e.g. a password a tenant changed itself) blocks its pool this long.
    "server_login_retry = 5",
    "ignore_startup_parameters = extra_float_digits",
    `server_tls_sslmode = ${spec.server.sslmode}`,
    ...(spec.server.sslmode === "verify-ca" || spec.server.sslmode === "verify-full"
      ? [`server_tls_ca_file = ${f.serverCaFile}`]
      : []),
    ...(spec.clients.connectionType === "hostssl"
      ? [
          "client_tls_sslmode = require",
          `client_tls_cert_file = ${f.tlsCertFile}`,
          `client_tls_key_file = ${f.tlsKeyFile}`,
        ]
      : []),
  ];
  return lines.join("\n") + "\n";
}

/** The settings `relocatePgbouncerIni` rewrites: the files a pooler host keeps elsewhere. */
const FILE_SETTINGS: ReadonlyArray<[string, keyof PoolerFiles]> = [
  ["auth_hba_file", "hbaFile"],
  ["auth_file", "authFile"],
  ["logfile", "logFile"],
  ["pidfile", "pidFile"],
  ["server_tls_ca_file", "serverCaFile"],
  ["client_tls_cert_file", "tlsCertFile"],
  ["client_tls_key_file", "tlsKeyFile"],
];

/**
 * A rendered pgbouncer.ini with its file settings (and optionally its listen port) pointed
 * elsewhere, e.g. into a local folder: everything else stays as deployed.
 */
export function relocatePgbouncerIni(
  ini: string,
  files: Partial<PoolerFiles>,
  listenPort?: number,
): string {
  return ini
    .split("\n")
    .map((line) => {
      const m = /^([a-z_]+) = /.exec(line);
      if (m === null) return line;
      if (m[1] === "listen_port" && listenPort !== undefined) return `listen_port = ${listenPort}`;
      const setting = FILE_SETTINGS.find(([key]) => key === m[1]);
      const file = setting === undefined ? undefined : files[setting[1]];
      return file === undefined ? line : `${m[1]} = ${file}`;
    })
    .join("\n");
}

/** The pooler's own hba (auth_hba_file): each tenant's logins from the client networks to its database only. */
export function renderPoolerHba(spec: PoolerSpec): string {
  const type = spec.clients.connectionType;
  const lines = [
    `# pgbouncer_hba.conf of the pooler of cluster "${spec.tier}", rendered by pg-tenants.`,
    "# TYPE  DATABASE  USERS  ADDRESS  METHOD",
  ];
  for (const d of spec.databases) {
    const users = d.logins.map((l) => l.user).join(",");
    for (const cidr of spec.clients.cidrs) {
      lines.push(`${type} ${d.database} ${users} ${cidr} scram-sha-256`);
    }
  }
  lines.push("host all all 0.0.0.0/0 reject", "host all all ::/0 reject");
  return lines.join("\n") + "\n";
}

/** One auth file line's data: a login and its SCRAM verifier. */
export interface AuthEntry {
  user: string;
  verifier: string;
}

/**
 * The auth file (auth_file) of SCRAM verifiers. A verifier is no password, but it allows
 * offline guessing and lets its holder pose as the server: the file is a secret output and
 * lives with mode 0600 on the pooler host.
 */
export function renderAuthFile(entries: readonly AuthEntry[]): string {
  const quote = (s: string) => `"${s.replace(/"/g, '""')}"`;
  return (
    [...entries]
      .sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0))
      .map((e) => `${quote(e.user)} ${quote(e.verifier)}`)
      .join("\n") + (entries.length > 0 ? "\n" : "")
  );
}

/** What the stack exports per cluster with a pooler (plain: no secret in it). */
export interface PoolerOutput {
  host: string;
  port: number;
  /** The most server connections it opens. */
  serverConnections: number;
  ini: string;
  hba: string;
}

export function poolerOutput(spec: PoolerSpec): PoolerOutput {
  return {
    host: spec.endpoint.host,
    port: spec.endpoint.port,
    serverConnections: spec.serverConnections,
    ini: renderPgbouncerIni(spec),
    hba: renderPoolerHba(spec),
  };
}
