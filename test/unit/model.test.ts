import assert from "node:assert/strict";
import { describe, it } from "@jest/globals";
import { renderHba } from "../../infra/hba";
import { buildFleetModel, buildTenantModel } from "../../infra/model";
import { localConfig, tenant } from "../../harness/localStack";

/**
 * The model of a tenant on day two: an offboarded tenant keeps its roles, grants, key and database
 * with its logins NOLOGIN and its group's CONNECT revoked; a declared move targets the model the
 * tenant has on the new tier, and the fleet places it on both.
 */

describe("model: offboarded tenant", () => {
  const cfg = localConfig();
  const active = buildTenantModel(tenant(), cfg);
  const off = buildTenantModel(tenant({ state: "offboarded", offboardedAt: "2026-11-01" }), cfg);

  it("makes the logins NOLOGIN and keeps every role, limit and membership", () => {
    assert.deepEqual(
      off.roles.map((r) => [r.name, r.login]),
      [
        ["tenant_acme", false],
        ["tenant_acme_owner", false],
        ["tenant_acme_rw", false],
        ["tenant_acme_ro", false],
      ],
    );
    assert.deepEqual(
      active.roles.map((r) => r.login),
      [false, false, true, true],
    );
    assert.deepEqual(
      off.roles.map(({ login: _l, ...rest }) => rest),
      active.roles.map(({ login: _l, ...rest }) => rest),
    );
  });

  it("revokes the group's CONNECT and closes the database; every other grant, the key and the name stay", () => {
    assert.equal(off.database.open, false);
    assert.equal(active.database.open, true);
    const connect = (m: typeof off) => m.grants.find((g) => g.key === "group-connect")?.privileges;
    assert.deepEqual(connect(off), []);
    assert.deepEqual(connect(active), ["CONNECT"]);
    assert.deepEqual(
      off.grants.filter((g) => g.key !== "group-connect"),
      active.grants.filter((g) => g.key !== "group-connect"),
    );
    assert.deepEqual(off.key, active.key);
    assert.deepEqual(off.database.name, active.database.name);
    assert.equal(off.offboardedAt, "2026-11-01");
    assert.equal(active.offboardedAt, undefined);
  });

  it("renders no pg_hba line for it", () => {
    const text = renderHba("standard", "pgtenants_provisioner", cfg.hba, [
      off,
      buildTenantModel(tenant({ id: "initech" }), cfg),
    ]);
    assert.ok(!text.includes("tenant_acme"));
    assert.ok(text.includes("host tenant_initech +tenant_initech 127.0.0.1/32 scram-sha-256"));
  });
});

describe("model: declared move", () => {
  const cfg = localConfig();
  const moving = buildTenantModel(tenant({ move: { to: "premium" } }), cfg);
  const moved = buildTenantModel(tenant({ tier: "premium" }), cfg);

  it("targets exactly the model the tenant has once its file says the new tier", () => {
    assert.equal(moving.tier, "standard");
    assert.equal(moving.logical.placement, "acme@standard");
    assert.deepEqual(moving.move?.target, moved);
    assert.equal(moving.move?.target.logical.placement, "acme@premium");
    // The premium tier's own defaults apply on the target (connection limit 50 per login there).
    assert.equal(moving.database.connectionLimit, 42);
    assert.equal(moving.move?.target.database.connectionLimit, 102);
  });

  it("places the tenant on both tiers of the fleet and admits it in both pg_hba files", () => {
    const fleet = buildFleetModel(
      [tenant({ move: { to: "premium" } }), tenant({ id: "globex", tier: "premium" })],
      cfg,
    );
    assert.deepEqual(
      fleet.byTier.standard.map((m) => m.id),
      ["acme"],
    );
    assert.deepEqual(
      fleet.byTier.premium.map((m) => m.id),
      ["globex"],
    );
    assert.deepEqual(
      fleet.movingIn.premium.map((m) => m.logical.placement),
      ["acme@premium"],
    );
    assert.deepEqual(fleet.movingIn.standard, []);
  });
});
