import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "@jest/globals";
import { parseStackConfig } from "../../infra/config";
import { buildTenantModel } from "../../infra/model";
import { CommandError } from "../../tools/lib/cli";
import {
  isSealed,
  KmsLike,
  openingKey,
  readSealHeader,
  sealFile,
  sealingKey,
  unsealFile,
} from "../../tools/lib/seal";
import { readStackFile } from "../../tools/stack";
import { localConfig, tenant } from "../../harness/localStack";

/** Sealed dumps: encrypted with the tenant's data key, and where each key provider keeps that key. */

describe("sealed dumps", () => {
  const key = Buffer.alloc(32, 3);
  const sealing = { key, header: { keySource: "local" as const } };

  it("round-trips, keeps no plaintext, and refuses a wrong key or an altered byte anywhere", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-seal-"));
    const plain = path.join(dir, "plain");
    const content = Buffer.concat([Buffer.from("PGDMP secret rows "), Buffer.alloc(3 << 20, 7)]);
    fs.writeFileSync(plain, content);
    const sealed = path.join(dir, "sealed");
    const header = sealFile(plain, sealed, "acme", sealing, new Date("2026-11-26T00:00:00Z"));
    assert.equal(header.tenant, "acme");
    assert.equal(isSealed(sealed), true);
    assert.equal(isSealed(plain), false);
    const bytes = fs.readFileSync(sealed);
    assert.equal(bytes.includes(Buffer.from("secret rows")), false);
    assert.equal((fs.statSync(sealed).mode & 0o777).toString(8), "600");

    unsealFile(sealed, path.join(dir, "out"), key);
    assert.ok(fs.readFileSync(path.join(dir, "out")).equals(content));

    const refused = (file: string, k: Buffer) =>
      assert.throws(
        () => unsealFile(file, path.join(dir, `out-${path.basename(file)}`), k),
        new CommandError(
          `${file} does not decrypt: wrong data key, or the file was altered or truncated`,
        ),
      );
    refused(sealed, Buffer.alloc(32, 4));
    for (const [name, at] of [
      ["body", bytes.length >> 1],
      ["tag", bytes.length - 1],
      ["header", bytes.indexOf(Buffer.from('"acme"')) + 2],
    ] as const) {
      const altered = Buffer.from(bytes);
      altered[at] ^= 1;
      const f = path.join(dir, `altered-${name}`);
      fs.writeFileSync(f, altered);
      if (name === "header") {
        // The tenant named in the header is authenticated: "acme" turned "abme" does not decrypt.
        assert.equal(readSealHeader(f).header.tenant, "abme");
      }
      refused(f, key);
      assert.equal(fs.existsSync(path.join(dir, `out-altered-${name}`)), false);
    }
    fs.rmSync(dir, { recursive: true });
  });
});

describe("sealing keys per key provider", () => {
  it("aws-kms: a fresh data key under the tenant's own key, only its ciphertext kept, the same context to open", async () => {
    // AWS is out of reach here: a recording KMS client stands in for @aws-sdk/client-kms.
    const calls: string[] = [];
    const kms = async (): Promise<KmsLike> => ({
      async generateDataKey(keyId, context) {
        calls.push(`generate ${keyId} ${JSON.stringify(context)}`);
        return { plaintext: Buffer.alloc(32, 9), ciphertext: Buffer.from("kms-ciphertext") };
      },
      async decrypt(ciphertext, context) {
        calls.push(`decrypt ${ciphertext.toString()} ${JSON.stringify(context)}`);
        return Buffer.alloc(32, 9);
      },
    });
    const prod = parseStackConfig("production", readStackFile("production").raw);
    const model = buildTenantModel(tenant(), prod);
    const sealing = await sealingKey(prod, model, {}, kms);
    assert.deepEqual(sealing.header, {
      keySource: "aws-kms",
      keyId: "alias/pg-tenants/production/acme",
      encryptedDataKey: Buffer.from("kms-ciphertext").toString("base64"),
    });
    const key = await openingKey(
      { alg: "aes-256-gcm", tenant: "acme", iv: "", createdAt: "", ...sealing.header },
      {},
      kms,
    );
    assert.ok(key.equals(Buffer.alloc(32, 9)));
    assert.deepEqual(calls, [
      'generate alias/pg-tenants/production/acme {"tenant":"acme","purpose":"final-dump"}',
      'decrypt kms-ciphertext {"tenant":"acme","purpose":"final-dump"}',
    ]);
  });

  it("local: the tenant's data key from PGTENANTS_DATA_KEY_<ID>, refused when missing or not 32 bytes", async () => {
    const cfg = localConfig();
    const model = buildTenantModel(tenant(), cfg);
    const key = Buffer.alloc(32, 5).toString("base64");
    const sealing = await sealingKey(cfg, model, { PGTENANTS_DATA_KEY_ACME: key });
    assert.deepEqual(sealing.header, { keySource: "local" });
    assert.equal(sealing.key.toString("base64"), key);
    await assert.rejects(
      sealingKey(cfg, model, {}),
      new CommandError(
        "no data key for tenant acme: set PGTENANTS_DATA_KEY_ACME to the stack output credentials.acme.dataKey (pulumi stack output --show-secrets credentials)",
      ),
    );
    await assert.rejects(
      sealingKey(cfg, model, { PGTENANTS_DATA_KEY_ACME: "c2hvcnQ=" }),
      new CommandError(
        "PGTENANTS_DATA_KEY_ACME must be the base64 of 32 bytes (the tenant's data key)",
      ),
    );
  });
});
