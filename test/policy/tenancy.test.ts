import { describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { parseTenantName, tenantIdOfLogicalName } from "../../infra/naming";
import { configOf, stackOf, stringsIn, tenantOf } from "../../policy/tenancy";
import { IN, urnOf } from "./util";

describe("tenant identity", () => {
  const names: [name: string, expected: ReturnType<typeof parseTenantName>][] = [
    ["tenant_acme", { id: "acme", kind: "group" }],
    ["tenant_acme_owner", { id: "acme", kind: "owner" }],
    ["tenant_acme_rw", { id: "acme", kind: "rw" }],
    ["tenant_acme_ro", { id: "acme", kind: "ro" }],
    ["tenant_big_corp_rw", { id: "big_corp", kind: "rw" }],
    ["tenant_x2", { id: "x2", kind: "group" }],
    ["pgtenants_provisioner", undefined],
    ["tenant_", undefined],
    ["tenant_9lives", undefined],
    ["public", undefined],
  ];
  for (const [name, expected] of names) {
    it(`parseTenantName("tenant_", ${name})`, () => {
      assert.deepEqual(parseTenantName("tenant_", name), expected);
    });
  }

  const logical: [name: string, expected: string | undefined][] = [
    ["acme", "acme"],
    ["acme@standard", "acme"],
    ["acme@standard-role-rw", "acme"],
    ["big_corp-key-kms", "big_corp"],
    ["acme-rw-password", "acme"],
    ["Acme", undefined],
    ["@standard", undefined],
  ];
  for (const [name, expected] of logical) {
    it(`tenantIdOfLogicalName(${name})`, () => {
      assert.equal(tenantIdOfLogicalName(name), expected);
    });
  }

  it("gives a resource a tenant only inside a tenant component", () => {
    const role = "postgresql:index/role:Role";
    assert.equal(
      tenantOf({
        name: "acme@standard-role-rw",
        urn: urnOf(role, "acme@standard-role-rw", IN.placement),
      }),
      "acme",
    );
    assert.equal(
      tenantOf({ name: "acme-key-kms", urn: urnOf("aws:kms/key:Key", "acme-key-kms", IN.key) }),
      "acme",
    );
    // The mock runtime's URNs name only the direct parent's type.
    const mocked =
      "urn:pulumi:local::pg-tenants::pg-tenants:index:TenantPlacement$postgresql:index/role:Role::acme@standard-role-rw";
    assert.equal(tenantOf({ name: "acme@standard-role-rw", urn: mocked }), "acme");
    assert.equal(
      tenantOf({ name: "acme@standard-role-rw", urn: urnOf(role, "acme@standard-role-rw") }),
      undefined,
    );
    assert.equal(
      tenantOf({
        name: "cluster-standard",
        urn: urnOf("pulumi:providers:postgresql", "cluster-standard"),
      }),
      undefined,
    );
    // The tenant component itself belongs to no tenant: only what it declares does.
    assert.equal(
      tenantOf({ name: "acme", urn: urnOf("pg-tenants:index:Tenant", "acme") }),
      undefined,
    );
  });

  it("reads the stack from a URN", () => {
    assert.equal(
      stackOf(urnOf("pulumi:providers:postgresql", "cluster-standard", [], "production-1")),
      "production-1",
    );
  });
});

describe("policy helpers", () => {
  it("fills in the config schema's defaults under what was supplied", () => {
    const schema = {
      properties: { a: { type: "integer" as const, default: 1 }, b: { type: "string" as const } },
    };
    /** What a policy's arguments give it as its config: `config`, as supplied. */
    const supplied = (config: Record<string, unknown> = {}) => ({
      getConfig: <T extends object>() => config as T,
    });
    assert.deepEqual(configOf(supplied(), schema), { a: 1 });
    assert.deepEqual(configOf(supplied({ a: 5, b: "x" }), schema), { a: 5, b: "x" });
  });

  it("lists every string inside props with its path, skipping values unknown during preview", () => {
    const props = { name: "x", roles: ["a", "b"], tags: { k: "v" }, n: 3 };
    Object.defineProperty(props, "unknown", {
      enumerable: true,
      get: () => {
        throw new Error("string value at .unknown can't be known during preview");
      },
    });
    assert.deepEqual(stringsIn(props), [
      { path: "name", value: "x" },
      { path: "roles.0", value: "a" },
      { path: "roles.1", value: "b" },
      { path: "tags.k", value: "v" },
    ]);
  });
});
