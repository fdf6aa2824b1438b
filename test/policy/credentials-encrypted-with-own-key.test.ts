import { describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { credentialsEncryptedWithOwnKey } from "../../policy/policies/credentials-encrypted-with-own-key";
import { stackViolations } from "./run";
import { link, stackResource, tenantFixtures } from "./util";

function tenant(id: string) {
  const f = tenantFixtures(id);
  const key = stackResource(f.kmsKey());
  const rw = stackResource(f.secret("rw"));
  const ro = stackResource(f.secret("ro"));
  link(rw, "kmsKeyId", key);
  link(ro, "kmsKeyId", key);
  return { key, rw, ro, all: [key, rw, ro] };
}

describe("credentials-encrypted-with-own-key", () => {
  it("passes secrets encrypted with their own tenant's key", async () => {
    assert.deepEqual(
      await stackViolations(credentialsEncryptedWithOwnKey, [
        ...tenant("acme").all,
        ...tenant("globex").all,
      ]),
      [],
    );
  });

  it("reports a secret without a tenant key (the account's default key)", async () => {
    const acme = tenant("acme");
    acme.ro.propertyDependencies = {};
    assert.deepEqual(await stackViolations(credentialsEncryptedWithOwnKey, acme.all), [
      {
        message:
          "Credentials secret pg-tenants/production/acme/ro of tenant acme must be encrypted with its tenant's KMS key (kmsKeyId must reference it).",
        urn: acme.ro.urn,
      },
    ]);
  });

  it("reports a secret encrypted with another tenant's key", async () => {
    const acme = tenant("acme");
    const globex = tenant("globex");
    acme.rw.propertyDependencies = {};
    link(acme.rw, "kmsKeyId", globex.key);
    assert.deepEqual(
      await stackViolations(credentialsEncryptedWithOwnKey, [...acme.all, ...globex.all]),
      [
        {
          message:
            "Credentials secret pg-tenants/production/acme/rw of tenant acme must be encrypted with its own tenant's KMS key, not globex-key-kms (tenant globex).",
          urn: acme.rw.urn,
        },
      ],
    );
  });
});
