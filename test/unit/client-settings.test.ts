import assert from "node:assert/strict";
import { describe, it } from "@jest/globals";
import {
  ClientMetrics,
  LocalOutputsCredentials,
  TenantConnector,
  TenantDirectory,
  LogSettings,
  parameterLoggingReasons,
  renderPrometheus,
  sslOptions,
} from "../../client";

describe("client: sslmode to pg's ssl option", () => {
  it("maps each sslmode of the stack config", () => {
    assert.equal(sslOptions("disable"), false);
    assert.deepEqual(sslOptions("require"), { rejectUnauthorized: false });
    const verifyCa = sslOptions("verify-ca", { ca: "CA PEM" });
    assert.ok(verifyCa !== false);
    assert.equal(verifyCa.rejectUnauthorized, true);
    assert.equal(verifyCa.ca, "CA PEM");
    // verify-ca checks the chain only: the host name check is switched off.
    assert.equal(verifyCa.checkServerIdentity?.("db.internal", {} as never), undefined);
    assert.deepEqual(sslOptions("verify-full", { ca: "CA PEM" }), {
      ca: "CA PEM",
      rejectUnauthorized: true,
    });
    assert.deepEqual(sslOptions("verify-full"), { rejectUnauthorized: true });
  });

  it("refuses modes that may silently fall back to plain text, and unknown ones", () => {
    for (const mode of ["prefer", "allow", "VERIFY-FULL", ""]) {
      assert.throws(() => sslOptions(mode), {
        message: `unsupported sslmode ${JSON.stringify(mode)}: use one of disable, require, verify-ca, verify-full`,
      });
    }
  });
});

describe("client: will the server log a data key?", () => {
  const quiet: LogSettings = {
    log_statement: "none",
    log_min_duration_statement: -1,
    log_min_duration_sample: -1,
    log_statement_sample_rate: 1,
    log_transaction_sample_rate: 0,
    log_parameter_max_length: -1,
    log_parameter_max_length_on_error: 0,
    auto_explain_log_min_duration: null,
    auto_explain_log_parameter_max_length: null,
  };

  it("is quiet with PostgreSQL's defaults", () => {
    assert.deepEqual(parameterLoggingReasons(quiet), []);
  });

  it("is quiet when statements are logged without their parameters, or only DDL/DML", () => {
    assert.deepEqual(
      parameterLoggingReasons({ ...quiet, log_statement: "all", log_parameter_max_length: 0 }),
      [],
    );
    assert.deepEqual(parameterLoggingReasons({ ...quiet, log_statement: "mod" }), []);
    assert.deepEqual(
      parameterLoggingReasons({
        ...quiet,
        log_min_duration_statement: 0,
        log_parameter_max_length: 0,
      }),
      [],
    );
  });

  it("names every setting that would log parameters", () => {
    assert.deepEqual(parameterLoggingReasons({ ...quiet, log_statement: "all" }), [
      "log_statement = all with log_parameter_max_length = -1",
    ]);
    assert.deepEqual(
      parameterLoggingReasons({
        ...quiet,
        log_min_duration_statement: 250,
        log_transaction_sample_rate: 0.1,
        log_parameter_max_length: 64,
      }),
      [
        "log_min_duration_statement = 250, log_transaction_sample_rate = 0.1 with log_parameter_max_length = 64",
      ],
    );
    assert.deepEqual(parameterLoggingReasons({ ...quiet, log_min_duration_sample: 0 }), [
      "log_min_duration_sample = 0 with log_parameter_max_length = -1",
    ]);
    assert.deepEqual(parameterLoggingReasons({ ...quiet, log_parameter_max_length_on_error: -1 }), [
      "log_parameter_max_length_on_error = -1",
    ]);
    assert.deepEqual(
      parameterLoggingReasons({
        ...quiet,
        auto_explain_log_min_duration: "0",
        auto_explain_log_parameter_max_length: "-1",
      }),
      ["auto_explain.log_min_duration = 0 with auto_explain.log_parameter_max_length = -1"],
    );
  });

  it("treats a server without log_parameter_max_length (before 13) as logging parameters in full", () => {
    assert.deepEqual(
      parameterLoggingReasons({ ...quiet, log_statement: "all", log_parameter_max_length: null }),
      ["log_statement = all with log_parameter_max_length = -1"],
    );
  });
});

describe("client: metrics", () => {
  const metrics: ClientMetrics = {
    open: 3,
    busy: 2,
    idle: 1,
    waiting: 4,
    waits: 10,
    waitTimeouts: 1,
    waitMs: 1500,
    connects: 7,
    connectFailures: 1,
    evictions: 2,
    idleCloses: 0,
    maxConnections: 40,
    maxConnectionsPerTenant: 5,
    authRetries: 1,
    tenants: {
      globex: { open: 1, busy: 0, idle: 1, waiting: 0, waits: 0, waitTimeouts: 0 },
      acme: { open: 2, busy: 2, idle: 0, waiting: 4, waits: 10, waitTimeouts: 1 },
    },
  };

  it("renders the Prometheus text format with per-tenant series, sorted", () => {
    const text = renderPrometheus(metrics);
    const samples = text.split("\n").filter((l) => l !== "" && !l.startsWith("#"));
    assert.deepEqual(samples, [
      "pgtenants_client_connections_max 40",
      "pgtenants_client_tenant_connections_max 5",
      "pgtenants_client_connections_open 3",
      "pgtenants_client_connections_busy 2",
      "pgtenants_client_connections_idle 1",
      "pgtenants_client_requests_waiting 4",
      "pgtenants_client_waits_total 10",
      "pgtenants_client_wait_seconds_total 1.5",
      "pgtenants_client_wait_timeouts_total 1",
      "pgtenants_client_connects_total 7",
      "pgtenants_client_connect_failures_total 1",
      "pgtenants_client_evictions_total 2",
      "pgtenants_client_auth_retries_total 1",
      'pgtenants_client_tenant_connections_open{tenant="acme"} 2',
      'pgtenants_client_tenant_connections_open{tenant="globex"} 1',
      'pgtenants_client_tenant_requests_waiting{tenant="acme"} 4',
      'pgtenants_client_tenant_requests_waiting{tenant="globex"} 0',
      'pgtenants_client_tenant_waits_total{tenant="acme"} 10',
      'pgtenants_client_tenant_waits_total{tenant="globex"} 0',
    ]);
    assert.match(
      text,
      /^# HELP pgtenants_client_connections_max Cap on server connections over all tenants\.\n# TYPE pgtenants_client_connections_max gauge\n/,
    );
    assert.ok(text.endsWith("\n"));
    assert.equal(text.split("\n").filter((l) => l.startsWith("# TYPE")).length, 16);
  });
});

describe("client: connector options", () => {
  const base = {
    directory: new TenantDirectory({ tenants: {} }),
    credentials: new LocalOutputsCredentials({}),
  };

  it("refuses caps that cannot hold", () => {
    assert.throws(() => new TenantConnector({ ...base, maxConnections: 0 }), {
      message: "maxConnections must be a whole number of at least 1",
    });
    assert.throws(
      () => new TenantConnector({ ...base, maxConnections: 4, maxConnectionsPerTenant: 5 }),
      {
        message: "maxConnectionsPerTenant must not exceed maxConnections",
      },
    );
    assert.throws(() => new TenantConnector({ ...base, acquireTimeoutMs: 1.5 }), {
      message: "acquireTimeoutMs must be a whole number of at least 1",
    });
  });

  it("reports its caps in the metrics before any request, and refuses requests once closed", async () => {
    const directory = new TenantDirectory({
      tenants: {
        acme: {
          cluster: "standard",
          host: "127.0.0.1",
          port: 1,
          database: "tenant_acme",
          roles: {
            group: "tenant_acme",
            owner: "tenant_acme_owner",
            rw: "tenant_acme_rw",
            ro: "tenant_acme_ro",
          },
        },
      },
    });
    const tc = new TenantConnector({ ...base, directory, maxConnections: 12 });
    assert.deepEqual(tc.metrics(), {
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
      tenants: {},
      maxConnections: 12,
      maxConnectionsPerTenant: 10,
      authRetries: 0,
    });
    await tc.close();
    await assert.rejects(
      tc.withTenant("acme", "rw", async () => 1),
      { name: "ConnectionWaitError", message: "the tenant client is closed" },
    );
  });
});
