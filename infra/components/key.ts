import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { KeysConfig } from "../config";
import type { TenantModel } from "../model";
import { keyOptions } from "../options";

export interface TenantKeyArgs {
  model: TenantModel;
  keys: KeysConfig;
}

/**
 * A tenant's 32-byte pgcrypto data key. With `aws-kms`: a KMS key of its own (rotation on,
 * tagged, aliased) and the data key kept as KMS ciphertext bound to an encryption context that
 * names the tenant. With `local`: the data key as a Pulumi secret, for stacks without AWS.
 */
export class TenantKey extends pulumi.ComponentResource {
  /** The data key (base64 of 32 random bytes): always a secret. */
  public readonly dataKey: pulumi.Output<string>;
  /** KMS ciphertext of the data key (aws-kms only). */
  public readonly dataKeyCiphertext?: pulumi.Output<string>;
  public readonly kmsKey?: aws.kms.Key;
  public readonly alias?: aws.kms.Alias;

  constructor(name: string, args: TenantKeyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pg-tenants:index:TenantKey", name, {}, opts);
    const { model, keys } = args;

    const bytes = new random.RandomBytes(`${name}-data`, { length: 32 }, { parent: this });
    this.dataKey = pulumi.secret(bytes.base64);

    if (keys.provider === "aws-kms") {
      this.kmsKey = new aws.kms.Key(
        `${name}-kms`,
        {
          description: `pg-tenants data key of tenant ${model.id}`,
          enableKeyRotation: true,
          deletionWindowInDays: keys.deletionWindowDays,
          keyUsage: "ENCRYPT_DECRYPT",
          tags: model.tags,
        },
        { parent: this, ...keyOptions() },
      );
      this.alias = new aws.kms.Alias(
        `${name}-alias`,
        { name: model.key.alias, targetKeyId: this.kmsKey.keyId },
        { parent: this },
      );
      const ciphertext = new aws.kms.Ciphertext(
        `${name}-data-ciphertext`,
        {
          keyId: this.kmsKey.keyId,
          plaintext: this.dataKey,
          context: model.key.encryptionContext,
        },
        { parent: this },
      );
      this.dataKeyCiphertext = ciphertext.ciphertextBlob;
    }
    this.registerOutputs({ alias: this.alias?.name });
  }
}
