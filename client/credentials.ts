import * as fs from "fs";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { credentialsSecretName, LoginKind } from "../infra/naming";
import { TenantSecretError } from "./errors";
import type { Credentials } from "../infra/components/credentials";

/**
 * What one login needs to connect: the JSON document the program stores per login role (one
 * definition, the program's, so the two sides cannot drift apart).
 */
export type LoginCredentials = Credentials;

/** Where credentials come from. Implementations fetch fresh on every call; caching is separate. */
export interface CredentialsProvider {
  fetch(tenantId: string, login: LoginKind): Promise<LoginCredentials>;
}

/** The stack output `credentials` (local key provider): per tenant both logins and the data key. */
export type CredentialsOutput = Record<
  string,
  { rw: LoginCredentials; ro: LoginCredentials; dataKey?: string }
>;

/** A value or something that reads the current one (a file, a config service). */
export type Source<T> = T | (() => T | Promise<T>);

async function read<T>(source: Source<T>): Promise<T> {
  return typeof source === "function" ? await (source as () => T | Promise<T>)() : source;
}

/**
 * Credentials from the stack's `credentials` output, for local stacks. Give the object, or a
 * function that returns the current one (re-read on each fetch), or call `update` after the
 * outputs change (password rotation).
 */
export class LocalOutputsCredentials implements CredentialsProvider {
  constructor(private source: Source<CredentialsOutput>) {}

  /** Reads `pulumi stack output --json --show-secrets credentials` saved to a file, on every fetch. */
  static fromFile(file: string): LocalOutputsCredentials {
    return new LocalOutputsCredentials(() => {
      let text: string;
      try {
        text = fs.readFileSync(file, "utf8");
      } catch (err) {
        throw new TenantSecretError(
          `cannot read credentials file ${file}: ${(err as Error).message}`,
        );
      }
      try {
        return JSON.parse(text) as CredentialsOutput;
      } catch {
        throw new TenantSecretError(`credentials file ${file} is not JSON`);
      }
    });
  }

  update(outputs: CredentialsOutput): void {
    this.source = outputs;
  }

  async fetch(tenantId: string, login: LoginKind): Promise<LoginCredentials> {
    const outputs = await read(this.source);
    const entry = Object.prototype.hasOwnProperty.call(outputs, tenantId)
      ? outputs[tenantId]
      : undefined;
    if (entry === undefined) {
      throw new TenantSecretError(`the credentials output has no entry for tenant ${tenantId}`);
    }
    return parseCredentials(entry[login], `credentials output ${tenantId}.${login}`);
  }
}

export interface SecretsManagerCredentialsOptions {
  client: SecretsManagerClient;
  /** The stack's `keys.aliasPrefix`: secrets are named `<aliasPrefix>/<id>/<login>`. */
  aliasPrefix: string;
  /** Overrides the secret id of a login (e.g. ARNs from the `tenants` output). */
  secretId?: (tenantId: string, login: LoginKind) => string;
}

/** Credentials from AWS Secrets Manager: one secret per login role, as the program writes them. */
export class SecretsManagerCredentials implements CredentialsProvider {
  constructor(private readonly options: SecretsManagerCredentialsOptions) {}

  async fetch(tenantId: string, login: LoginKind): Promise<LoginCredentials> {
    const secretId =
      this.options.secretId?.(tenantId, login) ??
      credentialsSecretName(this.options.aliasPrefix, tenantId, login);
    let secretString: string | undefined;
    try {
      const out = await this.options.client.send(new GetSecretValueCommand({ SecretId: secretId }));
      secretString = out.SecretString;
    } catch (err) {
      const name = (err as { name?: string }).name ?? "Error";
      throw new TenantSecretError(
        `cannot read secret ${secretId}: ${name}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    if (secretString === undefined) {
      throw new TenantSecretError(`secret ${secretId} has no SecretString`);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(secretString);
    } catch {
      throw new TenantSecretError(`secret ${secretId} is not a JSON document`);
    }
    return parseCredentials(doc, `secret ${secretId}`);
  }
}

const STRING_FIELDS = ["host", "database", "user", "password", "sslmode"] as const;

/** Checks a credentials document's shape; messages name fields, never their values. */
export function parseCredentials(doc: unknown, where: string): LoginCredentials {
  if (doc === null || typeof doc !== "object") {
    throw new TenantSecretError(
      `${where} must be an object with host, port, database, user, password, sslmode`,
    );
  }
  const d = doc as Record<string, unknown>;
  const problems: string[] = [];
  for (const f of STRING_FIELDS) {
    if (typeof d[f] !== "string" || d[f] === "") problems.push(`${f} must be a non-empty string`);
  }
  const port = typeof d.port === "string" ? Number(d.port) : d.port;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    problems.push("port must be a whole number from 1 to 65535");
  }
  if (d.dataKeyCiphertext !== undefined && typeof d.dataKeyCiphertext !== "string") {
    problems.push("dataKeyCiphertext must be a string");
  }
  if (problems.length > 0) throw new TenantSecretError(`${where}: ${problems.join("; ")}`);
  return {
    host: d.host as string,
    port: port as number,
    database: d.database as string,
    user: d.user as string,
    password: d.password as string,
    sslmode: d.sslmode as string,
    ...(typeof d.dataKeyCiphertext === "string" ? { dataKeyCiphertext: d.dataKeyCiphertext } : {}),
  };
}

/**
 * Caches a provider's answers for `ttlMs`; concurrent callers share one fetch. `invalidate`
 * drops an entry so the next `get` fetches anew (after an authentication failure).
 */
export class CredentialsCache {
  private readonly entries = new Map<string, { at: number; value: Promise<LoginCredentials> }>();

  constructor(
    private readonly provider: CredentialsProvider,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(tenantId: string, login: LoginKind): Promise<LoginCredentials> {
    const key = `${tenantId}\u0000${login}`;
    const hit = this.entries.get(key);
    if (hit !== undefined && this.now() - hit.at < this.ttlMs) return hit.value;
    const value = this.provider.fetch(tenantId, login);
    const entry = { at: this.now(), value };
    this.entries.set(key, entry);
    value.catch(() => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    });
    return value;
  }

  invalidate(tenantId: string, login: LoginKind): void {
    this.entries.delete(`${tenantId}\u0000${login}`);
  }

  clear(): void {
    this.entries.clear();
  }
}
