import { describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { tenantResourcesScoped } from "../../policy/policies/tenant-resources-scoped";
import { TENANT_TAG } from "../../policy/tenancy";
import { resourceViolations } from "./run";
import { Fixture, IN, tenantFixtures, withProps } from "./util";

const acme = tenantFixtures("acme");

const compliant: [string, () => Fixture][] = [
  ["group role", acme.group],
  ["owner role", acme.owner],
  ["rw role", acme.rw],
  ["ro role", acme.ro],
  ["provisioner's owner membership", acme.provisionerOwner],
  ["database", acme.database],
  ["PUBLIC revoke", acme.publicRevoke],
  ["group CONNECT", acme.groupConnect],
  ["table grant", acme.tablesRw],
  ["default privileges", acme.defaultTablesRo],
  ["extension", acme.extension],
  ["password", () => acme.password("rw")],
  ["data key", acme.dataKey],
  ["KMS key", acme.kmsKey],
  ["KMS alias", acme.alias],
  ["data key ciphertext", acme.ciphertext],
  ["credentials secret", () => acme.secret("rw")],
];

describe("tenant-resources-scoped", () => {
  for (const [what, fixture] of compliant) {
    it(`passes acme's ${what}`, async () => {
      assert.deepEqual(await resourceViolations(tenantResourcesScoped, fixture()), []);
    });
  }

  const cases: [change: string, fixture: () => Fixture, message: string][] = [
    [
      "a role declared outside any tenant component",
      () => ({ ...acme.rw(), parents: IN.top }),
      "postgresql:index/role:Role acme@standard-role-rw must be declared inside a tenant's component (pg-tenants:index:Tenant) with a name derived from the tenant id.",
    ],
    [
      "a role of another tenant inside acme",
      () => withProps(acme.rw(), { name: "tenant_globex_rw" }),
      "postgresql:index/role:Role acme@standard-role-rw of tenant acme must be one of its tenant's roles (tenant_acme, tenant_acme_owner, tenant_acme_rw, tenant_acme_ro), not tenant_globex_rw.",
    ],
    [
      "a GrantRole of another tenant's role inside acme",
      () => withProps(acme.provisionerOwner(), { grantRole: "tenant_globex_owner" }),
      "postgresql:index/grantRole:GrantRole acme@standard-provisioner-owner of tenant acme must grant one of its tenant's roles (tenant_acme, tenant_acme_owner, tenant_acme_rw, tenant_acme_ro), not tenant_globex_owner.",
    ],
    [
      "a database named for another tenant",
      () => withProps(acme.database(), { name: "tenant_globex", owner: "tenant_acme_owner" }),
      "postgresql:index/database:Database acme@standard-db of tenant acme must be named tenant_acme, not tenant_globex.",
    ],
    [
      "a database owned by another tenant's owner",
      () => withProps(acme.database(), { owner: "tenant_globex_owner" }),
      "postgresql:index/database:Database acme@standard-db of tenant acme must not reference tenant_globex_owner (owner), a name of tenant globex.",
    ],
    [
      "a grant on another tenant's database",
      () => withProps(acme.groupConnect(), { database: "tenant_globex" }),
      "postgresql:index/grant:Grant acme@standard-grant-group-connect of tenant acme must be on its tenant's database tenant_acme, not tenant_globex.",
    ],
    [
      "a grant to another tenant's role",
      () => withProps(acme.tablesRw(), { role: "tenant_globex_rw" }),
      "postgresql:index/grant:Grant acme@standard-grant-app-tables-rw of tenant acme must not reference tenant_globex_rw (role), a name of tenant globex.",
    ],
    [
      "a CONNECT grant to a role outside every tenant",
      () => withProps(acme.groupConnect(), { role: "reporting" }),
      "postgresql:index/grant:Grant acme@standard-grant-group-connect of tenant acme must grant to one of its tenant's roles (tenant_acme, tenant_acme_owner, tenant_acme_rw, tenant_acme_ro), not reporting.",
    ],
    [
      "default privileges for a role outside every tenant",
      () => withProps(acme.defaultTablesRo(), { role: "analytics" }),
      "postgresql:index/defaultPrivileges:DefaultPrivileges acme@standard-default-app-tables-ro of tenant acme must grant to one of its tenant's roles (tenant_acme, tenant_acme_owner, tenant_acme_rw, tenant_acme_ro), not analytics.",
    ],
    [
      "default privileges for objects of another tenant's owner",
      () => withProps(acme.defaultTablesRo(), { owner: "tenant_globex_owner" }),
      "postgresql:index/defaultPrivileges:DefaultPrivileges acme@standard-default-app-tables-ro of tenant acme must not reference tenant_globex_owner (owner), a name of tenant globex.",
    ],
    [
      "an extension in another tenant's database",
      () => withProps(acme.extension(), { database: "tenant_globex" }),
      "postgresql:index/extension:Extension acme@standard-ext-pgcrypto of tenant acme must be on its tenant's database tenant_acme, not tenant_globex.",
    ],
    [
      "a KMS key without the tenant tag",
      () => withProps(acme.kmsKey(), { tags: { "pg-tenants:stack": "production" } }),
      `aws:kms/key:Key acme-key-kms of tenant acme must carry the tag ${TENANT_TAG}=acme (has none).`,
    ],
    [
      "a KMS key tagged for another tenant",
      () => withProps(acme.kmsKey(), { tags: { [TENANT_TAG]: "globex" } }),
      `aws:kms/key:Key acme-key-kms of tenant acme must carry the tag ${TENANT_TAG}=acme (has globex).`,
    ],
    [
      "a credentials secret tagged for another tenant",
      () => withProps(acme.secret("ro"), { tags: { [TENANT_TAG]: "globex" } }),
      `aws:secretsmanager/secret:Secret acme-credentials-ro of tenant acme must carry the tag ${TENANT_TAG}=acme (has globex).`,
    ],
    [
      "a KMS alias naming another tenant",
      () => withProps(acme.alias(), { name: "alias/pg-tenants/production/globex" }),
      "aws:kms/alias:Alias acme-key-alias of tenant acme must be named alias/<prefix>/acme, not alias/pg-tenants/production/globex.",
    ],
    [
      "a ciphertext bound to another tenant's encryption context",
      () => withProps(acme.ciphertext(), { context: { tenant: "globex" } }),
      'aws:kms/ciphertext:Ciphertext acme-key-data-ciphertext of tenant acme must bind the encryption context tenant=acme (has {"tenant":"globex"}).',
    ],
  ];
  for (const [change, fixture, message] of cases) {
    it(`reports ${change}`, async () => {
      assert.deepEqual(await resourceViolations(tenantResourcesScoped, fixture()), [message]);
    });
  }

  it("never quotes a secret input, even one that looks like another tenant's name", async () => {
    const role = withProps(acme.rw(), { password: "tenant_globex_rw" });
    assert.deepEqual(await resourceViolations(tenantResourcesScoped, role), []);
  });

  it("ignores resources of types no tenant owns", async () => {
    const provider = {
      type: "pulumi:providers:postgresql",
      name: "cluster-standard",
      props: { username: "tenant_globex" },
    };
    assert.deepEqual(await resourceViolations(tenantResourcesScoped, provider), []);
  });
});

describe("tenant-resources-scoped during preview", () => {
  it("leaves a resource whose identity is not known yet to the update", async () => {
    const grant = acme.groupConnect();
    const props = { ...grant.props };
    Object.defineProperty(props, "database", {
      enumerable: true,
      get: () => {
        throw new Error("string value at .database can't be known during preview");
      },
    });
    assert.deepEqual(await resourceViolations(tenantResourcesScoped, { ...grant, props }), []);
  });
});
