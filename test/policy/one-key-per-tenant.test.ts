import { describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { oneKeyPerTenant } from "../../policy/policies/one-key-per-tenant";
import { TENANT_TAG } from "../../policy/tenancy";
import { stackViolations } from "./run";
import { link, stackResource, tenantFixtures, withProps } from "./util";

/** A tenant's key, the alias pointing at it and the data key encrypted with it. */
function keys(id: string) {
  const f = tenantFixtures(id);
  const key = stackResource(f.kmsKey());
  const alias = stackResource(f.alias());
  const ciphertext = stackResource(f.ciphertext());
  link(alias, "targetKeyId", key);
  link(ciphertext, "keyId", key);
  return { f, key, alias, ciphertext, all: [key, alias, ciphertext] };
}

describe("one-key-per-tenant", () => {
  it("passes one key per tenant, each used by its own tenant only", async () => {
    assert.deepEqual(
      await stackViolations(oneKeyPerTenant, [...keys("acme").all, ...keys("globex").all]),
      [],
    );
  });

  it("reports a second key of one tenant", async () => {
    const acme = keys("acme");
    const second = stackResource({ ...acme.f.kmsKey(), name: "acme-key-kms2" });
    assert.deepEqual(await stackViolations(oneKeyPerTenant, [...acme.all, second]), [
      {
        message: "Tenant acme must have exactly one KMS key, not 2 (acme-key-kms, acme-key-kms2).",
        urn: second.urn,
      },
    ]);
  });

  it("counts keys by their tenant tag", async () => {
    const acme = keys("acme");
    const globex = keys("globex");
    globex.key.props = withProps(globex.f.kmsKey(), { tags: { [TENANT_TAG]: "acme" } }).props;
    const found = await stackViolations(oneKeyPerTenant, [...acme.all, ...globex.all]);
    assert.deepEqual(
      found.map((v) => v.message),
      [
        "Tenant acme must have exactly one KMS key, not 2 (acme-key-kms, globex-key-kms).",
        "KMS alias alias/pg-tenants/production/globex of tenant globex must use its own tenant's KMS key, not globex-key-kms (tenant acme).",
        "Data key ciphertext globex-key-data-ciphertext of tenant globex must use its own tenant's KMS key, not globex-key-kms (tenant acme).",
      ],
    );
  });

  it("reports an alias pointing at another tenant's key", async () => {
    const acme = keys("acme");
    const globex = keys("globex");
    globex.alias.propertyDependencies = {};
    link(globex.alias, "targetKeyId", acme.key);
    assert.deepEqual(await stackViolations(oneKeyPerTenant, [...acme.all, ...globex.all]), [
      {
        message:
          "KMS alias alias/pg-tenants/production/globex of tenant globex must use its own tenant's KMS key, not acme-key-kms (tenant acme).",
        urn: globex.alias.urn,
      },
    ]);
  });

  it("reports a data key encrypted with another tenant's key", async () => {
    const acme = keys("acme");
    const globex = keys("globex");
    globex.ciphertext.propertyDependencies = {};
    link(globex.ciphertext, "keyId", acme.key);
    assert.deepEqual(await stackViolations(oneKeyPerTenant, [...acme.all, ...globex.all]), [
      {
        message:
          "Data key ciphertext globex-key-data-ciphertext of tenant globex must use its own tenant's KMS key, not acme-key-kms (tenant acme).",
        urn: globex.ciphertext.urn,
      },
    ]);
  });

  it("has nothing to check on a stack without KMS keys", async () => {
    const f = tenantFixtures("acme");
    assert.deepEqual(
      await stackViolations(oneKeyPerTenant, [
        stackResource(f.dataKey()),
        stackResource(f.database()),
      ]),
      [],
    );
  });
});
