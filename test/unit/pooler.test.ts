import { describe, expect, it } from "@jest/globals";
import * as pulumi from "@pulumi/pulumi";
import { isPasswordRejection, TenantConnector, TenantDirectory } from "../../client";
import { parseStackConfig, StackConfig } from "../../infra/config";
import { renderHba } from "../../infra/hba";
import { InputError } from "../../infra/issues";
import type { Tenant } from "../../infra/manifest";
import { buildFleetModel } from "../../infra/model";
import {
  fleetPoolers,
  poolerProblems,
  poolerSpec,
  relocatePgbouncerIni,
  renderAuthFile,
  renderPgbouncerIni,
  renderPoolerHba,
} from "../../infra/pooler";
import { isScramVerifier, scramVerifier } from "../../infra/scram";
import { resolve } from "../../harness/mocks";
import { runProgram, unwrapSecrets } from "../../harness/program";

/** A stack of the tests' own: one cluster with a pooler, one without. */
function stack(pooler: Record<string, unknown> = {}, server: Record<string, unknown> = {}) {
  return parseStackConfig("pooler-test", {
    template: "customer_template_v1",
    clusters: {
      standard: {
        host: "10.1.0.5",
        username: "pgtenants_provisioner",
        sslmode: "require",
        connectionLimit: 20,
        statementTimeoutMs: 30000,
        server: { maxConnections: 100, ...server },
        pooler: { host: "pooler.internal", sourceCidrs: ["10.3.0.0/24"], ...pooler },
      },
      premium: { host: "10.1.0.6", username: "pgtenants_provisioner" },
    },
    keys: { provider: "local" },
    hba: { clientCidrs: ["10.2.0.0/16"], adminCidrs: ["10.9.0.0/24"] },
  });
}

const tenant = (id: string, extra: Partial<Tenant> = {}): Tenant => ({
  id,
  displayName: id,
  tier: "standard",
  state: "active",
  file: `tenants/${id}.yaml`,
  ...extra,
});

const FLEET: Tenant[] = [
  tenant("acme"),
  tenant("tiny", { limits: { connectionLimit: 1 } }),
  tenant("slow", { limits: { statementTimeoutMs: 90000 } }),
  tenant("gone", { state: "offboarded", offboardedAt: "2026-01-01" }),
  tenant("elsewhere", { tier: "premium" }),
];

function specOf(cfg: StackConfig, tenants: Tenant[] = FLEET) {
  const fleet = buildFleetModel(tenants, cfg);
  const spec = poolerSpec(cfg, "standard", fleet.byTier.standard);
  if (spec === undefined) throw new Error("no pooler");
  return spec;
}

describe("SCRAM verifiers", () => {
  it("equal, byte for byte, what PostgreSQL 17 stored for the same password and salt", async () => {
    // `CREATE ROLE vec PASSWORD 'pencil'` on an embedded PostgreSQL 17, read from pg_authid.
    const stored =
      "SCRAM-SHA-256$4096:1rvvvmnYmNJH4cLFnQTNUg==$ouT2/eW8kjSJbNZs+u2KE4k0nQk6yXWVKlE+jFTbA0c=:nkz1dtPdTkRCKA6Z3wvZhaqsaxWTX1W5cplgl4YDNL4=";
    expect(await scramVerifier("pencil", "1rvvvmnYmNJH4cLFnQTNUg==")).toBe(stored);
    expect(isScramVerifier(stored)).toBe(true);
    expect(isScramVerifier("pencil")).toBe(false);
  });

  it("refuses what SASLprep could change, and an empty salt", async () => {
    await expect(scramVerifier("pässword", "AAAA")).rejects.toThrow(
      "a SCRAM verifier is computed only for non-empty printable ASCII passwords",
    );
    await expect(scramVerifier("", "AAAA")).rejects.toThrow("printable ASCII");
    await expect(scramVerifier("pencil", "")).rejects.toThrow(
      "a SCRAM verifier needs a non-empty base64 salt",
    );
  });
});

describe("the pooler of a cluster, from the model", () => {
  it("has one entry per active tenant, limits from the tier capped by each tenant's own", () => {
    const spec = specOf(stack());
    expect(spec.databases).toEqual([
      {
        tenant: "acme",
        database: "tenant_acme",
        poolSize: 4,
        maxDbConnections: 6,
        logins: [
          { kind: "rw", user: "tenant_acme_rw", maxUserConnections: 4 },
          { kind: "ro", user: "tenant_acme_ro", maxUserConnections: 2 },
        ],
      },
      {
        tenant: "slow",
        database: "tenant_slow",
        poolSize: 4,
        maxDbConnections: 6,
        logins: [
          { kind: "rw", user: "tenant_slow_rw", maxUserConnections: 4 },
          { kind: "ro", user: "tenant_slow_ro", maxUserConnections: 2 },
        ],
      },
      {
        // connectionLimit 1: each login holds one server connection at most, the database two.
        tenant: "tiny",
        database: "tenant_tiny",
        poolSize: 2,
        maxDbConnections: 2,
        logins: [
          { kind: "rw", user: "tenant_tiny_rw", maxUserConnections: 1 },
          { kind: "ro", user: "tenant_tiny_ro", maxUserConnections: 1 },
        ],
      },
    ]);
    expect(spec.serverConnections).toBe(14);
    expect(spec.server).toEqual({ host: "10.1.0.5", port: 5432, sslmode: "require" });
    expect(spec.endpoint).toEqual({ host: "pooler.internal", port: 6432 });
  });

  it("times out above the server: query_timeout over the longest statement timeout plus the queue wait", () => {
    expect(specOf(stack()).timeouts).toEqual({
      queryMs: 90000 + 30000 + 1000,
      queryWaitMs: 30000,
      idleTransactionMs: 300000 + 1000,
      serverIdleMs: 60000,
    });
    const explicit = specOf(stack({ queryTimeoutMs: 200000, idleTransactionTimeoutMs: 20000 }));
    expect(explicit.timeouts.queryMs).toBe(200000);
    expect(explicit.timeouts.idleTransactionMs).toBe(20000);
    // No statement timeout on any login: the pooler sets none either unless told to.
    const none = specOf(stack(), [tenant("acme", { limits: { statementTimeoutMs: 0 } })]);
    expect(none.timeouts.queryMs).toBe(0);
  });

  it("renders pgbouncer.ini: transaction pooling, hba auth, no * database, TLS to the server", () => {
    const spec = specOf(stack(), [
      tenant("acme"),
      tenant("tiny", { limits: { connectionLimit: 1 } }),
    ]);
    expect(renderPgbouncerIni(spec)).toBe(
      [
        '; pgbouncer.ini of the pooler of cluster "standard", rendered by pg-tenants from the tenants manifest.',
        "; Do not edit by hand: change tenants/ or the stack config and render again.",
        "; At most 8 server connections (the sum of max_db_connections).",
        "",
        "[databases]",
        "; One entry per active tenant; no * entry, so any other database is unknown.",
        "tenant_acme = host=10.1.0.5 port=5432 dbname=tenant_acme pool_size=4 max_db_connections=6",
        "tenant_tiny = host=10.1.0.5 port=5432 dbname=tenant_tiny pool_size=2 max_db_connections=2",
        "",
        "[users]",
        "tenant_acme_rw = max_user_connections=4",
        "tenant_acme_ro = max_user_connections=2",
        "tenant_tiny_rw = max_user_connections=1",
        "tenant_tiny_ro = max_user_connections=1",
        "",
        "[pgbouncer]",
        "listen_addr = *",
        "listen_port = 6432",
        "unix_socket_dir =",
        "auth_type = hba",
        "auth_hba_file = /etc/pgbouncer/standard/pgbouncer_hba.conf",
        "auth_file = /etc/pgbouncer/standard/userlist.txt",
        "logfile = /var/log/postgresql/pgbouncer-standard.log",
        "pidfile = /run/postgresql/pgbouncer-standard.pid",
        "pool_mode = transaction",
        "max_client_conn = 2000",
        "reserve_pool_size = 0",
        "query_timeout = 61",
        "query_wait_timeout = 30",
        "idle_transaction_timeout = 301",
        "server_idle_timeout = 60",
        "server_login_retry = 5",
        "ignore_startup_parameters = extra_float_digits",
        "server_tls_sslmode = require",
        "client_tls_sslmode = require",
        "client_tls_cert_file = /etc/pgbouncer/standard/server.crt",
        "client_tls_key_file = /etc/pgbouncer/standard/server.key",
        "",
      ].join("\n"),
    );
  });

  it("moves the files elsewhere and leaves every other line as rendered", () => {
    const spec = specOf(stack());
    const local = {
      authFile: "/w/.local/pooler/standard/userlist.txt",
      hbaFile: "/w/.local/pooler/standard/pgbouncer_hba.conf",
      logFile: "/w/.local/pooler/standard/pgbouncer.log",
      pidFile: "/w/.local/pooler/standard/pgbouncer.pid",
    };
    const moved = relocatePgbouncerIni(renderPgbouncerIni(spec), local, 7000);
    expect(moved).toBe(
      renderPgbouncerIni({
        ...spec,
        listen: { ...spec.listen, port: 7000 },
        files: { ...spec.files, ...local },
      }),
    );
  });

  it("renders the pooler's hba: each tenant's two logins, to its own database, from the client networks", () => {
    const spec = specOf(stack(), [tenant("acme"), tenant("tiny")]);
    expect(renderPoolerHba(spec)).toBe(
      [
        '# pgbouncer_hba.conf of the pooler of cluster "standard", rendered by pg-tenants.',
        "# TYPE  DATABASE  USERS  ADDRESS  METHOD",
        "hostssl tenant_acme tenant_acme_rw,tenant_acme_ro 10.2.0.0/16 scram-sha-256",
        "hostssl tenant_tiny tenant_tiny_rw,tenant_tiny_ro 10.2.0.0/16 scram-sha-256",
        "host all all 0.0.0.0/0 reject",
        "host all all ::/0 reject",
        "",
      ].join("\n"),
    );
  });

  it("writes the auth file sorted by login, quoted as PgBouncer reads it", () => {
    expect(
      renderAuthFile([
        { user: "tenant_b_rw", verifier: "SCRAM-SHA-256$4096:c2FsdA==$a:b" },
        { user: "tenant_a_ro", verifier: 'x"y' },
      ]),
    ).toBe('"tenant_a_ro" "x""y"\n"tenant_b_rw" "SCRAM-SHA-256$4096:c2FsdA==$a:b"\n');
    expect(renderAuthFile([])).toBe("");
  });

  it("admits the pooler's own addresses in the cluster's pg_hba, once each", () => {
    const cfg = stack();
    const models = buildFleetModel([tenant("acme")], cfg).byTier.standard;
    const lines = renderHba("standard", "p", cfg.hba, models, ["10.3.0.0/24", "10.2.0.0/16"])
      .split("\n")
      .filter((l) => l.includes("tenant_acme"));
    expect(lines).toEqual([
      "hostssl tenant_acme +tenant_acme 10.2.0.0/16 scram-sha-256",
      "hostssl tenant_acme +tenant_acme 10.3.0.0/24 scram-sha-256",
    ]);
  });
});

describe("the pooler's budget and timeouts against the cluster", () => {
  const many = Array.from({ length: 20 }, (_, i) => tenant(`t${i}`));

  it("fits: 20 tenants x 4 server connections within 92 slots", () => {
    const cfg = stack({ maxDbConnections: 4 });
    expect(poolerProblems(cfg, buildFleetModel(many, cfg))).toEqual([]);
  });

  it("refuses more server connections than the cluster leaves to tenant logins, and says what fits", () => {
    const cfg = stack();
    expect(poolerProblems(cfg, buildFleetModel(many, cfg))).toEqual([
      {
        field: "clusters.standard.pooler.maxDbConnections",
        message:
          'the pooler may open 120 server connections (20 tenant(s), up to 6 each) but cluster "standard" leaves 92 to tenant logins (server.maxConnections 100 - superuserReservedConnections 3 - reservedConnections 5): lower pooler.maxDbConnections to 4 or less, raise server.maxConnections to at least 128, or move tenants to another cluster',
      },
    ]);
  });

  it("refuses a query_timeout that would cut a statement the server allows", () => {
    const cfg = stack({ queryTimeoutMs: 100000 });
    expect(poolerProblems(cfg, buildFleetModel(FLEET, cfg))).toEqual([
      {
        field: "clusters.standard.pooler.queryTimeoutMs",
        message:
          'must be above 120000 ms: the longest statement timeout on cluster "standard" (90000 ms) plus queryWaitTimeoutMs (30000 ms), as PgBouncer counts the wait for a server connection in query_timeout',
      },
    ]);
  });

  it("leaves clusters without a pooler out", () => {
    const cfg = stack();
    expect(fleetPoolers(cfg, buildFleetModel(FLEET, cfg)).map((p) => p.tier)).toEqual(["standard"]);
  });
});

describe("pooler settings in the stack config", () => {
  const problems = (cluster: Record<string, unknown>) => {
    try {
      parseStackConfig("pooler-test", {
        template: "customer_template_v1",
        clusters: {
          standard: { host: "h", username: "p", ...cluster },
          premium: { host: "h", username: "p" },
        },
        keys: { provider: "local" },
        hba: { clientCidrs: ["10.2.0.0/16"], adminCidrs: ["10.9.0.0/24"] },
      });
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      return e.issues.map((i) => `${i.field}: ${i.message}`);
    }
    return [];
  };

  it.each([
    [
      { pooler: { host: "p" } },
      [
        "pg-tenants:clusters.standard.pooler.sourceCidrs: Invalid input: expected array, received undefined",
      ],
    ],
    [
      { pooler: { host: "p", sourceCidrs: ["10.0.0.0/8"], poolsize: 3 } },
      [
        "pg-tenants:clusters.standard.pooler.poolsize: unknown field; allowed: host, port, listenAddr, sourceCidrs, poolSize, maxDbConnections, rwMaxConnections, roMaxConnections, maxClientConnections, queryTimeoutMs, queryWaitTimeoutMs, idleTransactionTimeoutMs, serverIdleTimeoutMs, paths",
      ],
    ],
    [
      { pooler: { host: "p", sourceCidrs: ["10.0.0.0/8"], maxDbConnections: 0 } },
      [
        "pg-tenants:clusters.standard.pooler.maxDbConnections: maxDbConnections must be from 1 to 2000",
      ],
    ],
    [
      { pooler: { host: "p", sourceCidrs: ["10.0.0.0/8"], paths: { authFile: "users.txt" } } },
      [
        "pg-tenants:clusters.standard.pooler.paths.authFile: must be an absolute path without spaces, ; or #",
      ],
    ],
    [
      { advice: { up: "gold" } },
      ["pg-tenants:clusters.standard.advice.up: must name another tier of the stack (premium)"],
    ],
    [
      { advice: { maxLoadShare: 1.5 } },
      [
        "pg-tenants:clusters.standard.advice.maxLoadShare: maxLoadShare must be above 0 and at most 1",
      ],
    ],
  ])("refuses %j", (cluster, expected) => {
    expect(problems(cluster)).toEqual(expected);
  });
});

describe("the program's pooler outputs (local stack under mocks)", () => {
  it("exports each cluster's pgbouncer.ini and hba, and a secret auth file of exactly the verifiers set as passwords", async () => {
    const run = await runProgram("local", [
      { id: "acme", tier: "standard" },
      { id: "globex", tier: "premium" },
      { id: "initech", tier: "standard" },
    ]);
    const { pooler, poolerAuth, tenants } = run.outputs;
    expect(Object.keys(pooler ?? {})).toEqual(["standard", "premium"]);
    expect(pooler?.standard.serverConnections).toBe(12);
    expect(pooler?.standard.ini).toContain(
      "tenant_acme = host=127.0.0.1 port=55432 dbname=tenant_acme pool_size=4 max_db_connections=6",
    );
    expect(pooler?.premium.ini).toContain("listen_port = 56433");
    expect(tenants.acme.pooler).toEqual({ host: "127.0.0.1", port: 56432 });

    const auth = await resolve(poolerAuth as pulumi.Output<Record<string, string>>);
    expect(auth.secret).toBe(true);
    const password = (name: string) =>
      (unwrapSecrets(run.mocks.named(name).inputs) as { password: { secret: string } }).password
        .secret;
    expect(auth.value.standard).toBe(
      [
        `"tenant_acme_ro" "${password("acme@standard-role-ro")}"`,
        `"tenant_acme_rw" "${password("acme@standard-role-rw")}"`,
        `"tenant_initech_ro" "${password("initech@standard-role-ro")}"`,
        `"tenant_initech_rw" "${password("initech@standard-role-rw")}"`,
        "",
      ].join("\n"),
    );
    expect(isScramVerifier(password("acme@standard-role-rw"))).toBe(true);
    // The verifier is the generated password's under the login's own salt.
    const salt = run.mocks.named("acme-rw-salt");
    expect(salt.inputs).toEqual({ length: 16 });
    expect(JSON.stringify(pooler)).not.toContain("SCRAM-SHA-256");
  });

  it("refuses a manifest whose pooler would not fit its cluster, before declaring anything", async () => {
    await expect(
      runProgram(
        "local",
        [
          { id: "acme", tier: "standard" },
          { id: "initech", tier: "standard" },
        ],
        {
          clusters: {
            standard: {
              host: "127.0.0.1",
              port: 55432,
              username: "pgtenants_provisioner",
              sslmode: "disable",
              // The logins' own budget fits (2 tenants x 2 logins x 4, overcommitted twice over);
              // the pooler's, which allows no overcommit, does not.
              connectionLimit: 4,
              server: { maxConnections: 18, overcommit: 2 },
              pooler: { host: "127.0.0.1", sourceCidrs: ["127.0.0.1/32"] },
            },
            premium: { host: "127.0.0.1", port: 55433, username: "pgtenants_provisioner" },
          },
        },
      ),
    ).rejects.toThrow(
      'The poolers of stack local do not fit their clusters:\n  - stacks/Pulumi.local.yaml: pg-tenants:clusters.standard.pooler.maxDbConnections: the pooler may open 12 server connections (2 tenant(s), up to 6 each) but cluster "standard" leaves 10 to tenant logins',
    );
  });
});

describe("the client library and the pooler", () => {
  it.each([
    [{ code: "28P01", message: 'password authentication failed for user "tenant_acme_rw"' }, true],
    [{ code: "08P01", message: "SASL authentication failed" }, true],
    [{ code: "08P01", message: "no such database: tenant_globex" }, false],
    [{ code: "08P01", message: "query_wait_timeout" }, false],
    [{ code: "28000", message: "pg_hba.conf rejects connection" }, false],
  ])("re-fetches credentials on %j: %s", (err, expected) => {
    expect(isPasswordRejection(err)).toBe(expected);
  });

  it("reads the pooler of each tenant from the tenants output, and refuses to go through one that is not there", async () => {
    const summary = {
      cluster: "standard",
      host: "10.1.0.5",
      port: 5432,
      database: "tenant_acme",
      roles: {
        group: "tenant_acme",
        owner: "tenant_acme_owner",
        rw: "tenant_acme_rw",
        ro: "tenant_acme_ro",
      },
    };
    const directory = new TenantDirectory({
      tenants: {
        acme: { ...summary, pooler: { host: "pooler.internal", port: 6432 } },
        bare: {
          ...summary,
          database: "tenant_bare",
          roles: { ...summary.roles, rw: "tenant_bare_rw", ro: "tenant_bare_ro" },
        },
      },
    });
    expect(directory.byId("acme").pooler).toEqual({ host: "pooler.internal", port: 6432 });
    expect(directory.byId("bare").pooler).toBeUndefined();
    const connector = new TenantConnector({
      directory,
      via: "pooler",
      credentials: {
        fetch: async () => ({
          host: "10.1.0.5",
          port: 5432,
          database: "tenant_bare",
          user: "tenant_bare_rw",
          password: "x",
          sslmode: "disable",
        }),
      },
    });
    await expect(connector.withTenant("bare", "rw", async () => 1)).rejects.toThrow(
      `tenant bare's cluster standard has no pooler in the stack's tenants output; connect with via: "cluster"`,
    );
    await connector.close();
  });
});
