import { DecryptCommand, KMSClient } from "@aws-sdk/client-kms";
import type { CredentialsOutput, CredentialsProvider, Source } from "./credentials";
import type { ResolvedTenant } from "./directory";
import { TenantSecretError } from "./errors";

/**
 * A tenant's data key: the pgcrypto passphrase, the base64 text of 32 random bytes (what the
 * program's RandomBytes produced; with KMS, the plaintext the ciphertext decrypts to).
 */
export interface DataKeyProvider {
  dataKey(tenant: ResolvedTenant): Promise<string>;
}

/** Data keys from the stack's `credentials` output (local key provider). */
export class LocalDataKeys implements DataKeyProvider {
  constructor(private source: Source<CredentialsOutput>) {}

  update(outputs: CredentialsOutput): void {
    this.source = outputs;
  }

  async dataKey(tenant: ResolvedTenant): Promise<string> {
    const outputs = typeof this.source === "function" ? await this.source() : this.source;
    const entry = Object.prototype.hasOwnProperty.call(outputs, tenant.id)
      ? outputs[tenant.id]
      : undefined;
    if (typeof entry?.dataKey !== "string" || entry.dataKey === "") {
      throw new TenantSecretError(`the credentials output has no dataKey for tenant ${tenant.id}`);
    }
    return entry.dataKey;
  }
}

export interface KmsDataKeysOptions {
  client: KMSClient;
  /** Where the ciphertext is: the `dataKeyCiphertext` of the tenant's rw credentials document. */
  credentials: CredentialsProvider;
}

/**
 * Data keys decrypted with KMS. The encryption context `{tenant: <id>}` binds each ciphertext to
 * its tenant: KMS refuses to decrypt acme's ciphertext when asked for globex, and the tenant's
 * key alias (when the stack exports it) pins the key.
 */
export class KmsDataKeys implements DataKeyProvider {
  constructor(private readonly options: KmsDataKeysOptions) {}

  async dataKey(tenant: ResolvedTenant): Promise<string> {
    const doc = await this.options.credentials.fetch(tenant.id, "rw");
    if (doc.dataKeyCiphertext === undefined) {
      throw new TenantSecretError(
        `the rw credentials of tenant ${tenant.id} carry no dataKeyCiphertext`,
      );
    }
    let plaintext: Uint8Array | undefined;
    try {
      const out = await this.options.client.send(
        new DecryptCommand({
          CiphertextBlob: Buffer.from(doc.dataKeyCiphertext, "base64"),
          EncryptionContext: { tenant: tenant.id },
          ...(tenant.keyAlias !== undefined ? { KeyId: tenant.keyAlias } : {}),
        }),
      );
      plaintext = out.Plaintext;
    } catch (err) {
      const name = (err as { name?: string }).name ?? "Error";
      throw new TenantSecretError(
        `KMS could not decrypt the data key of tenant ${tenant.id}: ${name}`,
        {
          cause: err,
        },
      );
    }
    if (plaintext === undefined || plaintext.length === 0) {
      throw new TenantSecretError(
        `KMS returned no plaintext for the data key of tenant ${tenant.id}`,
      );
    }
    return Buffer.from(plaintext).toString("utf8");
  }
}

/** Keeps decrypted data keys in this process's memory only (never on disk), per tenant. */
export class DataKeyCache {
  private readonly keys = new Map<string, Promise<string>>();

  constructor(private readonly provider: DataKeyProvider) {}

  get(tenant: ResolvedTenant): Promise<string> {
    const hit = this.keys.get(tenant.id);
    if (hit !== undefined) return hit;
    const value = this.provider.dataKey(tenant);
    this.keys.set(tenant.id, value);
    value.catch(() => {
      if (this.keys.get(tenant.id) === value) this.keys.delete(tenant.id);
    });
    return value;
  }

  forget(tenantId?: string): void {
    if (tenantId === undefined) this.keys.clear();
    else this.keys.delete(tenantId);
  }
}
