import * as postgresql from "@pulumi/postgresql";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { ClusterConfig, KeysConfig } from "../config";
import type { TenantModel } from "../model";
import { LOGIN_KINDS, LoginKind } from "../naming";
import { scramVerifier } from "../scram";
import { Credentials, TenantCredentials } from "./credentials";
import { TenantKey } from "./key";
import { TenantPlacement } from "./placement";

export interface TenantArgs {
  model: TenantModel;
  cluster: ClusterConfig;
  keys: KeysConfig;
  /** The provider of the cluster of the tenant's tier. */
  provider: postgresql.Provider;
  /** A declared move: the placement on the target tier, declared beside the source one. */
  moveTarget?: { model: TenantModel; cluster: ClusterConfig; provider: postgresql.Provider };
}

/** What the stack exports about a tenant in plain text: names and locations, never secrets. */
export interface TenantSummary {
  displayName: string;
  cluster: string;
  host: string;
  port: number;
  database: string;
  roles: { group: string; owner: string; rw: string; ro: string };
  keyProvider: KeysConfig["provider"];
  keyAlias?: string;
  credentialsSecretArns?: Record<LoginKind, pulumi.Output<string>>;
  /** Where applications reach the cluster's pooler (a cluster with `pooler` only). */
  pooler?: { host: string; port: number };
}

/** What the stack exports about a tenant as a secret (local key provider). */
export interface TenantSecrets {
  rw: Credentials;
  ro: Credentials;
  dataKey: string;
}

/** One tenant: passwords, key, its placement on the tier's cluster, and credentials. */
export class Tenant extends pulumi.ComponentResource {
  public readonly summary: TenantSummary;
  /** Credentials and data key, for stacks without a secret store: always a secret. */
  public readonly secrets: pulumi.Output<TenantSecrets>;
  /**
   * Per login, the SCRAM verifier that is the role's password on the server and its line in
   * the pooler's auth file: always a secret.
   */
  public readonly verifiers: Record<LoginKind, pulumi.Output<string>>;
  public readonly placement: TenantPlacement;
  /** The placement on the tier a declared move goes to (empty until `npm run move` copies). */
  public readonly targetPlacement?: TenantPlacement;

  constructor(name: string, args: TenantArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pg-tenants:index:Tenant", name, {}, opts);
    const { model } = args;

    const passwords = {} as Record<LoginKind, pulumi.Output<string>>;
    const verifiers = {} as Record<LoginKind, pulumi.Output<string>>;
    for (const login of LOGIN_KINDS) {
      const password = new random.RandomPassword(
        `${name}-${login}-password`,
        { length: 40, special: false, minLower: 4, minUpper: 4, minNumeric: 4 },
        { parent: this },
      );
      passwords[login] = pulumi.secret(password.result);
      // The server stores the verifier the program computes, not one of its own with a random
      // salt: the pooler's auth file holds the same string, and pass-through needs both equal.
      // The salt is random once and then stable, so the verifier changes only with the password.
      const salt = new random.RandomBytes(
        `${name}-${login}-salt`,
        { length: 16 },
        { parent: this },
      );
      verifiers[login] = pulumi.secret(
        pulumi
          .all([password.result, salt.base64])
          .apply(([plain, saltBase64]) => scramVerifier(plain, saltBase64)),
      );
    }
    this.verifiers = verifiers;

    const key = new TenantKey(`${name}-key`, { model, keys: args.keys }, { parent: this });

    this.placement = new TenantPlacement(
      model.logical.placement,
      { model, provisioner: args.cluster.username, passwords: verifiers },
      { parent: this, providers: { postgresql: args.provider } },
    );

    if (args.moveTarget !== undefined) {
      const target = args.moveTarget;
      this.targetPlacement = new TenantPlacement(
        target.model.logical.placement,
        { model: target.model, provisioner: target.cluster.username, passwords: verifiers },
        { parent: this, providers: { postgresql: target.provider } },
      );
    }

    const credentials = new TenantCredentials(
      `${name}-credentials`,
      {
        model,
        cluster: args.cluster,
        keys: args.keys,
        passwords,
        kmsKey: key.kmsKey,
        dataKeyCiphertext: key.dataKeyCiphertext,
      },
      // No dependsOn the placement: a move takes the source placement out of the state with
      // `pulumi state delete --target-dependents`, which would take the credentials (and their
      // secrets in Secrets Manager, whose names are fixed) with it.
      { parent: this },
    );

    this.summary = {
      displayName: model.displayName,
      cluster: model.tier,
      host: args.cluster.host,
      port: args.cluster.port,
      database: model.names.database,
      roles: {
        group: model.names.group,
        owner: model.names.owner,
        rw: model.names.rw,
        ro: model.names.ro,
      },
      keyProvider: args.keys.provider,
      ...(args.keys.provider === "aws-kms"
        ? { keyAlias: model.key.alias, credentialsSecretArns: credentials.secretArns }
        : {}),
      ...(args.cluster.pooler !== undefined
        ? { pooler: { host: args.cluster.pooler.host, port: args.cluster.pooler.port } }
        : {}),
    };
    this.secrets = pulumi.secret(
      pulumi
        .all([credentials.documents.rw, credentials.documents.ro, key.dataKey])
        .apply(([rw, ro, dataKey]) => ({ rw, ro, dataKey })),
    );
    this.registerOutputs({ summary: this.summary });
  }
}
