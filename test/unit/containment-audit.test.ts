import { describe, expect, it } from "@jest/globals";
import { parseStackConfig } from "../../infra/config";
import { containmentFindings, ContainmentSnapshot, normalise } from "../../tools/audit/containment";
import { buildFleetModel } from "../../infra/model";
import { readStackFile } from "../../tools/stack";

/** The containment audit's comparisons on snapshots built by hand (the live reads are integration-tested). */

const cfg = parseStackConfig("local", readStackFile("local").raw);
const fleet = buildFleetModel(
  [
    {
      id: "acme",
      displayName: "Acme",
      tier: "standard",
      state: "active",
      file: "tenants/acme.yaml",
    },
  ],
  cfg,
);

const clean = (): ContainmentSnapshot => ({
  tier: "standard",
  serverMajor: 17,
  settings: {
    max_connections: "200",
    superuser_reserved_connections: "3",
    reserved_connections: "5",
    authentication_timeout: "5s",
    // The provisioning role's own values: not what tenants get.
    temp_file_limit: "-1",
    idle_session_timeout: "0",
    idle_in_transaction_session_timeout: "0",
  },
  roleSettings: [{ role: "tenant_acme_rw", database: "*", setting: "statement_timeout=30000" }],
  sessions: {},
  loginLimits: { tenant_acme_rw: 20, tenant_acme_ro: 20 },
  provisioner: {
    settings: ["lock_timeout=2min"],
    memberOf: ["pg_signal_backend", "pg_use_reserved_connections"],
  },
  contents: {},
});

describe("containmentFindings", () => {
  it("finds nothing when the server, the roles and the provisioning role are as the model says", () => {
    expect(containmentFindings(cfg, fleet, clean())).toEqual([]);
  });

  it("reports server settings off the stack's, in PostgreSQL's own units", () => {
    const snap = clean();
    snap.settings.max_connections = "100";
    snap.settings.authentication_timeout = "1min";
    expect(containmentFindings(cfg, fleet, snap).map((f) => f.message)).toEqual([
      "max_connections is 100 on cluster standard; the stack's server settings say 200",
      "authentication_timeout is 1min on cluster standard; the stack's server settings say 5s",
    ]);
  });

  it("reports a provisioning role the bootstrap did not prepare", () => {
    const snap = clean();
    snap.provisioner = { settings: [], memberOf: [] };
    expect(containmentFindings(cfg, fleet, snap).map((f) => f.message)).toEqual([
      "the provisioning role pgtenants_provisioner has no lock_timeout: a tenant's lock can stall every deploy (ALTER ROLE pgtenants_provisioner SET lock_timeout = '2min')",
      "the provisioning role pgtenants_provisioner is not a member of pg_signal_backend (GRANT pg_signal_backend TO pgtenants_provisioner)",
      "the provisioning role pgtenants_provisioner is not a member of pg_use_reserved_connections (GRANT pg_use_reserved_connections TO pgtenants_provisioner)",
    ]);
  });

  it("reports live limits that exceed the server's slots", () => {
    const snap = clean();
    snap.loginLimits = { tenant_acme_rw: 150, tenant_acme_ro: 150 };
    expect(containmentFindings(cfg, fleet, snap).map((f) => f.message)).toEqual([
      "the tenant logins on cluster standard may hold 300 connections together; the server leaves them 192 (overcommit 1)",
    ]);
  });
});

describe("normalise", () => {
  it.each([
    ["1GB", "1024MB"],
    ["15min", "900000ms"],
    ["5s", "5000ms"],
    ["0", "0"],
  ])("%s equals %s", (a, b) => {
    expect(normalise(a)).toBe(normalise(b));
  });
  it("tells 1GB from 1000MB", () => {
    expect(normalise("1GB")).not.toBe(normalise("1000MB"));
  });
});
