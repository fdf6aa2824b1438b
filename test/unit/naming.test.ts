import assert from "node:assert/strict";
import { describe, it } from "@jest/globals";
import {
  clusterProviderName,
  credentialsSecretName,
  keyAliasName,
  LONGEST_SUFFIX_LENGTH,
  maxTenantIdLength,
  placementLogicalName,
  restoreDatabaseName,
  tenantNames,
} from "../../infra/naming";
import { quoteIdent } from "../../infra/sql";

describe("naming", () => {
  it("derives every PostgreSQL name of a tenant from prefix and id", () => {
    assert.deepEqual(tenantNames("tenant_", "acme"), {
      database: "tenant_acme",
      group: "tenant_acme",
      owner: "tenant_acme_owner",
      rw: "tenant_acme_rw",
      ro: "tenant_acme_ro",
    });
  });

  it("keeps the longest derived name of the longest allowed id within 63 bytes", () => {
    const id = "x".repeat(maxTenantIdLength("tenant_"));
    assert.equal(id.length, 33);
    const restore = restoreDatabaseName("tenant_", id, new Date("2026-11-26T06:30:59.123Z"));
    assert.equal(restore, `tenant_${id}_restore_20261126063059`);
    assert.equal(Buffer.byteLength(restore), 63);
    assert.equal(LONGEST_SUFFIX_LENGTH, 23);
    for (const name of Object.values(tenantNames("tenant_", id)))
      assert.ok(name.length <= 63, name);
  });

  const logical: Array<[string, string, string]> = [
    ["placement", placementLogicalName("acme", "premium"), "acme@premium"],
    ["cluster provider", clusterProviderName("standard"), "cluster-standard"],
    ["KMS alias", keyAliasName("pg-tenants/prod", "acme"), "alias/pg-tenants/prod/acme"],
    [
      "credentials secret",
      credentialsSecretName("pg-tenants/prod", "acme", "ro"),
      "pg-tenants/prod/acme/ro",
    ],
  ];
  for (const [what, actual, expected] of logical) {
    it(`names the ${what} ${expected}`, () => assert.equal(actual, expected));
  }
});

describe("quoteIdent", () => {
  it("quotes a plain identifier", () => assert.equal(quoteIdent("tenant_acme"), '"tenant_acme"'));

  const hostile = ['acme"; DROP DATABASE x; --', "Acme", "\u0430cme", "a b", "", "x".repeat(64)];
  for (const name of hostile) {
    it(`refuses ${JSON.stringify(name.slice(0, 20))}`, () => {
      assert.throws(() => quoteIdent(name), {
        message: `refusing identifier ${JSON.stringify(name)}: only lowercase letters, digits, _ and $ (at most 63 bytes) may reach SQL`,
      });
    });
  }
});
