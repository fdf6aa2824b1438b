import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { ClusterConfig, KeysConfig } from "../config";
import type { TenantModel } from "../model";
import { credentialsSecretName, LOGIN_KINDS, LoginKind } from "../naming";

/** What an application needs to connect as one login; the JSON stored per login role. */
export interface Credentials {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
  sslmode: string;
  dataKeyCiphertext?: string;
}

export interface TenantCredentialsArgs {
  model: TenantModel;
  cluster: ClusterConfig;
  keys: KeysConfig;
  passwords: Record<LoginKind, pulumi.Input<string>>;
  /** The KMS key that encrypts the secrets (aws-kms only). */
  kmsKey?: aws.kms.Key;
  dataKeyCiphertext?: pulumi.Input<string>;
}

/**
 * Credentials of a tenant's login roles. With `aws-kms`: one Secrets Manager secret per login,
 * encrypted with the tenant's own KMS key. With `local`: the same JSON, as secret outputs only.
 */
export class TenantCredentials extends pulumi.ComponentResource {
  /** Per login, the credentials document: a secret. */
  public readonly documents: Record<LoginKind, pulumi.Output<Credentials>>;
  /** Per login, the Secrets Manager secret's ARN (aws-kms only). */
  public readonly secretArns?: Record<LoginKind, pulumi.Output<string>>;

  constructor(name: string, args: TenantCredentialsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pg-tenants:index:TenantCredentials", name, {}, opts);
    const { model, cluster } = args;

    const documents = {} as Record<LoginKind, pulumi.Output<Credentials>>;
    for (const login of LOGIN_KINDS) {
      documents[login] = pulumi.secret(
        pulumi
          .all([args.passwords[login], args.dataKeyCiphertext])
          .apply(([password, dataKeyCiphertext]): Credentials => ({
            host: cluster.host,
            port: cluster.port,
            database: model.names.database,
            user: model.names[login],
            password,
            sslmode: cluster.sslmode,
            ...(dataKeyCiphertext !== undefined ? { dataKeyCiphertext } : {}),
          })),
      );
    }
    this.documents = documents;

    if (args.keys.provider === "aws-kms") {
      if (args.kmsKey === undefined) {
        throw new Error(`internal: tenant ${model.id} has no KMS key for its credentials`);
      }
      const arns = {} as Record<LoginKind, pulumi.Output<string>>;
      for (const login of LOGIN_KINDS) {
        const secret = new aws.secretsmanager.Secret(
          `${name}-${login}`,
          {
            name: credentialsSecretName(args.keys.aliasPrefix, model.id, login),
            description: `pg-tenants ${login} credentials of tenant ${model.id}`,
            kmsKeyId: args.kmsKey.arn,
            tags: { ...model.tags, "pg-tenants:login": login },
          },
          { parent: this },
        );
        new aws.secretsmanager.SecretVersion(
          `${name}-${login}-version`,
          { secretId: secret.id, secretString: pulumi.jsonStringify(documents[login]) },
          { parent: this },
        );
        arns[login] = secret.arn;
      }
      this.secretArns = arns;
    }
    this.registerOutputs({});
  }
}
