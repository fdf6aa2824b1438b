import { createCipheriv, createDecipheriv, randomBytes } from "crypto";
import * as fs from "fs";
import type { StackConfig } from "../../infra/config";
import type { TenantModel } from "../../infra/model";
import { CommandError } from "./cli";

/**
 * Dumps sealed at rest with a tenant's key: AES-256-GCM over the whole file. Layout:
 *
 *   PGTENANTS-SEALED/1\n  <header JSON>\n  <ciphertext>  <16-byte GCM tag>
 *
 * The magic line and the header are authenticated (GCM additional data), so neither the key
 * reference nor the tenant can be swapped. Where the key comes from:
 * - `aws-kms`: a fresh data key per dump from KMS GenerateDataKey under the tenant's own key
 *   (alias/<prefix>/<id>) with encryption context {tenant, purpose: final-dump}; the header
 *   keeps only its KMS ciphertext. Scheduling the tenant's KMS key for deletion makes every
 *   such dump unreadable (crypto-shredding).
 * - `local`: the tenant's data key (the stack output credentials.<id>.dataKey, base64), given
 *   in `PGTENANTS_DATA_KEY_<ID>`.
 */

export const SEAL_MAGIC = "PGTENANTS-SEALED/1\n";
const TAG_BYTES = 16;

export interface SealHeader {
  alg: "aes-256-gcm";
  tenant: string;
  keySource: "local" | "aws-kms";
  /** The KMS key alias (aws-kms). */
  keyId?: string;
  /** KMS ciphertext of the data key, base64 (aws-kms). */
  encryptedDataKey?: string;
  iv: string;
  createdAt: string;
}

/** A data key to seal with, and what the header must record to find it again. */
export interface SealingKey {
  key: Buffer;
  header: Pick<SealHeader, "keySource" | "keyId" | "encryptedDataKey">;
}

export function dataKeyEnvName(tenant: string): string {
  return `PGTENANTS_DATA_KEY_${tenant.toUpperCase()}`;
}

function localKey(tenant: string, env: NodeJS.ProcessEnv): Buffer {
  const name = dataKeyEnvName(tenant);
  const value = env[name];
  if (value === undefined || value === "") {
    throw new CommandError(
      `no data key for tenant ${tenant}: set ${name} to the stack output credentials.${tenant}.dataKey (pulumi stack output --show-secrets credentials)`,
    );
  }
  const key = Buffer.from(value, "base64");
  if (key.length !== 32)
    throw new CommandError(`${name} must be the base64 of 32 bytes (the tenant's data key)`);
  return key;
}

/** The minimal KMS client the sealing needs; @aws-sdk/client-kms provides it. */
export interface KmsLike {
  generateDataKey(
    keyId: string,
    context: Record<string, string>,
  ): Promise<{ plaintext: Buffer; ciphertext: Buffer }>;
  decrypt(ciphertext: Buffer, context: Record<string, string>): Promise<Buffer>;
}

/** The AWS SDK's KMS client, loaded only when a stack uses aws-kms. */
export async function awsKms(): Promise<KmsLike> {
  const kms = await import("@aws-sdk/client-kms");
  const client = new kms.KMSClient({});
  return {
    async generateDataKey(keyId, context) {
      const r = await client.send(
        new kms.GenerateDataKeyCommand({
          KeyId: keyId,
          KeySpec: "AES_256",
          EncryptionContext: context,
        }),
      );
      if (r.Plaintext === undefined || r.CiphertextBlob === undefined)
        throw new CommandError(`KMS returned no data key for ${keyId}`);
      return { plaintext: Buffer.from(r.Plaintext), ciphertext: Buffer.from(r.CiphertextBlob) };
    },
    async decrypt(ciphertext, context) {
      const r = await client.send(
        new kms.DecryptCommand({ CiphertextBlob: ciphertext, EncryptionContext: context }),
      );
      if (r.Plaintext === undefined) throw new CommandError("KMS returned no plaintext");
      return Buffer.from(r.Plaintext);
    },
  };
}

const dumpContext = (tenant: string) => ({ tenant, purpose: "final-dump" });

/** The key a new sealed dump of this tenant uses, per the stack's key provider. */
export async function sealingKey(
  cfg: StackConfig,
  model: TenantModel,
  env: NodeJS.ProcessEnv,
  kms: () => Promise<KmsLike> = awsKms,
): Promise<SealingKey> {
  if (cfg.keys.provider === "local")
    return { key: localKey(model.id, env), header: { keySource: "local" } };
  const generated = await (await kms()).generateDataKey(model.key.alias, dumpContext(model.id));
  return {
    key: generated.plaintext,
    header: {
      keySource: "aws-kms",
      keyId: model.key.alias,
      encryptedDataKey: generated.ciphertext.toString("base64"),
    },
  };
}

/** The key that opens a sealed dump, from its header. */
export async function openingKey(
  header: SealHeader,
  env: NodeJS.ProcessEnv,
  kms: () => Promise<KmsLike> = awsKms,
): Promise<Buffer> {
  if (header.keySource === "local") return localKey(header.tenant, env);
  if (header.encryptedDataKey === undefined)
    throw new CommandError("sealed dump header has no encrypted data key");
  return (await kms()).decrypt(
    Buffer.from(header.encryptedDataKey, "base64"),
    dumpContext(header.tenant),
  );
}

export function isSealed(file: string): boolean {
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.alloc(SEAL_MAGIC.length);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    return n === buf.length && buf.toString("latin1") === SEAL_MAGIC;
  } finally {
    fs.closeSync(fd);
  }
}

/** Encrypts `src` into `dst` (created 0600) and returns the header written. */
export function sealFile(
  src: string,
  dst: string,
  tenant: string,
  sealing: SealingKey,
  at: Date,
): SealHeader {
  const iv = randomBytes(12);
  const header: SealHeader = {
    alg: "aes-256-gcm",
    tenant,
    ...sealing.header,
    iv: iv.toString("base64"),
    createdAt: at.toISOString(),
  };
  const prefix = Buffer.from(SEAL_MAGIC + JSON.stringify(header) + "\n", "utf8");
  const cipher = createCipheriv("aes-256-gcm", sealing.key, iv);
  cipher.setAAD(prefix);
  const fd = fs.openSync(dst, "wx", 0o600);
  try {
    fs.writeSync(fd, prefix);
    forEachChunk(src, 0, fs.statSync(src).size, (chunk) => fs.writeSync(fd, cipher.update(chunk)));
    fs.writeSync(fd, cipher.final());
    fs.writeSync(fd, cipher.getAuthTag());
  } finally {
    fs.closeSync(fd);
  }
  return header;
}

/** Reads the header of a sealed dump. */
export function readSealHeader(file: string): { header: SealHeader; prefixBytes: number } {
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.alloc(64 * 1024);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const text = buf.subarray(0, n).toString("latin1");
    const end = text.indexOf("\n", SEAL_MAGIC.length);
    if (!text.startsWith(SEAL_MAGIC) || end < 0)
      throw new CommandError(`${file} is not a sealed pg-tenants dump`);
    const json = buf.subarray(SEAL_MAGIC.length, end).toString("utf8");
    try {
      return { header: JSON.parse(json) as SealHeader, prefixBytes: end + 1 };
    } catch {
      throw new CommandError(`${file} has a damaged header`);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Decrypts a sealed dump into `dst` (0600). Authentication is checked at the end: on a wrong
 * key or any altered byte the output is deleted and nothing of it is used.
 */
export function unsealFile(src: string, dst: string, key: Buffer): SealHeader {
  const { header, prefixBytes } = readSealHeader(src);
  const size = fs.statSync(src).size;
  if (size < prefixBytes + TAG_BYTES) throw new CommandError(`${src} is truncated`);
  const fdIn = fs.openSync(src, "r");
  const tag = Buffer.alloc(TAG_BYTES);
  fs.readSync(fdIn, tag, 0, TAG_BYTES, size - TAG_BYTES);
  const prefix = Buffer.alloc(prefixBytes);
  fs.readSync(fdIn, prefix, 0, prefixBytes, 0);
  fs.closeSync(fdIn);
  const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(header.iv, "base64"));
  decipher.setAAD(prefix);
  decipher.setAuthTag(tag);
  const fd = fs.openSync(dst, "wx", 0o600);
  try {
    forEachChunk(src, prefixBytes, size - TAG_BYTES, (chunk) =>
      fs.writeSync(fd, decipher.update(chunk)),
    );
    fs.writeSync(fd, decipher.final());
  } catch {
    fs.closeSync(fd);
    fs.rmSync(dst, { force: true });
    throw new CommandError(
      `${src} does not decrypt: wrong data key, or the file was altered or truncated`,
    );
  }
  fs.closeSync(fd);
  return header;
}

function forEachChunk(file: string, from: number, to: number, fn: (chunk: Buffer) => void): void {
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.alloc(1 << 20);
    let pos = from;
    while (pos < to) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, to - pos), pos);
      if (n === 0) break;
      fn(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}
