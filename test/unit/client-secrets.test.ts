import assert from "node:assert/strict";
import { describe, it } from "@jest/globals";
import { Readable } from "node:stream";
import { KMSClient } from "@aws-sdk/client-kms";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import {
  CredentialsCache,
  CredentialsProvider,
  DataKeyCache,
  KmsDataKeys,
  LocalDataKeys,
  LocalOutputsCredentials,
  LoginCredentials,
  ResolvedTenant,
  SecretsManagerCredentials,
  TenantSecretError,
} from "../../client";
import type { LoginKind } from "../../infra/naming";

/** One HTTP request as the SDK sent it, decoded. */
interface SeenRequest {
  host: string;
  target: string;
  body: Record<string, unknown>;
}

type Answer = { status: number; body: Record<string, unknown> };

/**
 * The SDK's network layer replaced: every request is recorded and answered by `answer` with a
 * canned JSON response, the way the AWS JSON protocol carries it. No AWS is reachable here.
 */
function cannedHandler(answer: (req: SeenRequest) => Answer) {
  const seen: SeenRequest[] = [];
  const handler = {
    handle: async (request: {
      hostname: string;
      headers: Record<string, string>;
      body: Uint8Array;
    }) => {
      const req: SeenRequest = {
        host: request.hostname,
        target: request.headers["x-amz-target"],
        body: JSON.parse(new TextDecoder().decode(request.body)) as Record<string, unknown>,
      };
      seen.push(req);
      const { status, body } = answer(req);
      return {
        response: {
          statusCode: status,
          headers: {
            "content-type": "application/x-amz-json-1.1",
            "x-amzn-requestid": `req-${seen.length}`,
          },
          body: Readable.from([Buffer.from(JSON.stringify(body))]),
        },
      };
    },
  };
  return { handler, seen };
}

const awsConfig = {
  region: "eu-west-1",
  credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "not-a-secret" },
};

function doc(
  id: string,
  login: LoginKind,
  password: string,
  extra: Partial<LoginCredentials> = {},
): LoginCredentials {
  return {
    host: "db.internal",
    port: 5432,
    database: `tenant_${id}`,
    user: `tenant_${id}_${login}`,
    password,
    sslmode: "verify-full",
    ...extra,
  };
}

const acme: ResolvedTenant = {
  id: "acme",
  cluster: "standard",
  host: "db.internal",
  port: 5432,
  database: "tenant_acme",
  logins: { rw: "tenant_acme_rw", ro: "tenant_acme_ro" },
  keyAlias: "alias/pg-tenants/production/acme",
};
const globex: ResolvedTenant = {
  ...acme,
  id: "globex",
  database: "tenant_globex",
  keyAlias: "alias/pg-tenants/production/globex",
  logins: { rw: "tenant_globex_rw", ro: "tenant_globex_ro" },
};

describe("client: Secrets Manager credentials (SDK client, network replaced)", () => {
  const secrets: Record<string, string> = {
    "pg-tenants/production/acme/rw": JSON.stringify(
      doc("acme", "rw", "pw-rw", { dataKeyCiphertext: "Y3Q=" }),
    ),
    "pg-tenants/production/acme/ro": JSON.stringify(doc("acme", "ro", "pw-ro")),
    "pg-tenants/production/broken/rw": "not json",
    "pg-tenants/production/partial/rw": JSON.stringify({
      host: "h",
      port: "x",
      database: "d",
      user: "u",
      password: "",
      sslmode: "require",
    }),
  };
  const { handler, seen } = cannedHandler((req) => {
    const id = req.body.SecretId as string;
    if (req.target !== "secretsmanager.GetSecretValue")
      return {
        status: 400,
        body: { __type: "InvalidRequestException", message: "unexpected call" },
      };
    if (!(id in secrets)) {
      return {
        status: 400,
        body: {
          __type: "ResourceNotFoundException",
          message: "Secrets Manager can't find the specified secret.",
        },
      };
    }
    return {
      status: 200,
      body: {
        ARN: `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${id}-AbCdEf`,
        Name: id,
        SecretString: secrets[id],
        VersionId: "v1",
      },
    };
  });
  const provider = new SecretsManagerCredentials({
    client: new SecretsManagerClient({ ...awsConfig, requestHandler: handler }),
    aliasPrefix: "pg-tenants/production",
  });

  it("reads one secret per login, named like credentialsSecretName, and parses it", async () => {
    seen.length = 0;
    assert.deepEqual(await provider.fetch("acme", "ro"), doc("acme", "ro", "pw-ro"));
    assert.deepEqual(
      await provider.fetch("acme", "rw"),
      doc("acme", "rw", "pw-rw", { dataKeyCiphertext: "Y3Q=" }),
    );
    assert.deepEqual(seen, [
      {
        host: "secretsmanager.eu-west-1.amazonaws.com",
        target: "secretsmanager.GetSecretValue",
        body: { SecretId: "pg-tenants/production/acme/ro" },
      },
      {
        host: "secretsmanager.eu-west-1.amazonaws.com",
        target: "secretsmanager.GetSecretValue",
        body: { SecretId: "pg-tenants/production/acme/rw" },
      },
    ]);
  });

  it("names the secret and the AWS error when a secret is missing", async () => {
    await assert.rejects(provider.fetch("hooli", "rw"), {
      name: "TenantSecretError",
      message:
        "cannot read secret pg-tenants/production/hooli/rw: ResourceNotFoundException: Secrets Manager can't find the specified secret.",
    });
  });

  it("refuses malformed documents without echoing their values", async () => {
    await assert.rejects(provider.fetch("broken", "rw"), {
      message: "secret pg-tenants/production/broken/rw is not a JSON document",
    });
    await assert.rejects(provider.fetch("partial", "rw"), {
      message:
        "secret pg-tenants/production/partial/rw: password must be a non-empty string; port must be a whole number from 1 to 65535",
    });
  });

  it("uses a custom secret id when given (e.g. ARNs from the tenants output)", async () => {
    seen.length = 0;
    const byArn = new SecretsManagerCredentials({
      client: new SecretsManagerClient({ ...awsConfig, requestHandler: handler }),
      aliasPrefix: "unused",
      secretId: (id, login) => `pg-tenants/production/${id}/${login}`,
    });
    assert.equal((await byArn.fetch("acme", "rw")).user, "tenant_acme_rw");
    assert.deepEqual(
      seen.map((r) => r.body.SecretId),
      ["pg-tenants/production/acme/rw"],
    );
  });
});

describe("client: KMS data keys (SDK client, network replaced)", () => {
  // A stand-in for KMS's contract: a ciphertext decrypts only with the encryption context (and
  // key) it was made with; anything else is InvalidCiphertextException.
  const dataKeys: Record<
    string,
    { plaintext: string; context: Record<string, string>; keyAlias: string }
  > = {
    [Buffer.from("ct-acme").toString("base64")]: {
      plaintext: "YWNtZS1kYXRhLWtleQ==",
      context: { tenant: "acme" },
      keyAlias: "alias/pg-tenants/production/acme",
    },
    [Buffer.from("ct-globex").toString("base64")]: {
      plaintext: "Z2xvYmV4LWRhdGEta2V5",
      context: { tenant: "globex" },
      keyAlias: "alias/pg-tenants/production/globex",
    },
  };
  const { handler, seen } = cannedHandler((req) => {
    const entry = dataKeys[req.body.CiphertextBlob as string];
    const ok =
      req.target === "TrentService.Decrypt" &&
      entry !== undefined &&
      JSON.stringify(req.body.EncryptionContext) === JSON.stringify(entry.context) &&
      req.body.KeyId === entry.keyAlias;
    if (!ok) return { status: 400, body: { __type: "InvalidCiphertextException", message: "" } };
    return {
      status: 200,
      body: {
        KeyId: "arn:aws:kms:eu-west-1:123456789012:key/k",
        Plaintext: Buffer.from(entry.plaintext).toString("base64"),
        EncryptionAlgorithm: "SYMMETRIC_DEFAULT",
      },
    };
  });
  const ciphertexts: Record<string, string | undefined> = {
    acme: Buffer.from("ct-acme").toString("base64"),
    globex: Buffer.from("ct-acme").toString("base64"), // globex's document wrongly carries acme's ciphertext
    initech: undefined,
  };
  const credentials: CredentialsProvider = {
    fetch: async (id, login) =>
      doc(
        id,
        login,
        "pw",
        ciphertexts[id] === undefined ? {} : { dataKeyCiphertext: ciphertexts[id] },
      ),
  };
  const keys = new KmsDataKeys({
    client: new KMSClient({ ...awsConfig, requestHandler: handler }),
    credentials,
  });

  it("decrypts the tenant's ciphertext with the encryption context naming the tenant", async () => {
    seen.length = 0;
    assert.equal(await keys.dataKey(acme), "YWNtZS1kYXRhLWtleQ==");
    assert.deepEqual(seen, [
      {
        host: "kms.eu-west-1.amazonaws.com",
        target: "TrentService.Decrypt",
        body: {
          CiphertextBlob: Buffer.from("ct-acme").toString("base64"),
          EncryptionContext: { tenant: "acme" },
          KeyId: "alias/pg-tenants/production/acme",
        },
      },
    ]);
  });

  it("fails when a ciphertext is presented for another tenant (KMS refuses the context)", async () => {
    await assert.rejects(keys.dataKey(globex), {
      name: "TenantSecretError",
      message: "KMS could not decrypt the data key of tenant globex: InvalidCiphertextException",
    });
  });

  it("names the tenant whose credentials carry no ciphertext", async () => {
    await assert.rejects(keys.dataKey({ ...acme, id: "initech" }), {
      message: "the rw credentials of tenant initech carry no dataKeyCiphertext",
    });
  });

  it("caches decrypted keys in memory: one KMS call per tenant, concurrent callers share it", async () => {
    seen.length = 0;
    const cache = new DataKeyCache(keys);
    const got = await Promise.all([cache.get(acme), cache.get(acme), cache.get(acme)]);
    assert.deepEqual(got, ["YWNtZS1kYXRhLWtleQ==", "YWNtZS1kYXRhLWtleQ==", "YWNtZS1kYXRhLWtleQ=="]);
    assert.equal(await cache.get(acme), "YWNtZS1kYXRhLWtleQ==");
    assert.equal(seen.length, 1);
    cache.forget("acme");
    await cache.get(acme);
    assert.equal(seen.length, 2);
  });

  it("does not cache a failure", async () => {
    seen.length = 0;
    const cache = new DataKeyCache(keys);
    await assert.rejects(cache.get(globex), TenantSecretError);
    await assert.rejects(cache.get(globex), TenantSecretError);
    assert.equal(seen.length, 2);
  });
});

describe("client: local outputs (credentials and data keys)", () => {
  const outputs = {
    acme: { rw: doc("acme", "rw", "one"), ro: doc("acme", "ro", "two"), dataKey: "a2V5LWFjbWU=" },
  };

  it("reads credentials and the data key from the credentials output", async () => {
    const creds = new LocalOutputsCredentials(outputs);
    assert.deepEqual(await creds.fetch("acme", "ro"), doc("acme", "ro", "two"));
    assert.equal(await new LocalDataKeys(outputs).dataKey(acme), "a2V5LWFjbWU=");
  });

  it("names the tenant missing from the output, including inherited keys", async () => {
    const creds = new LocalOutputsCredentials(outputs);
    await assert.rejects(creds.fetch("globex", "rw"), {
      message: "the credentials output has no entry for tenant globex",
    });
    await assert.rejects(creds.fetch("constructor", "rw"), {
      message: "the credentials output has no entry for tenant constructor",
    });
    await assert.rejects(new LocalDataKeys(outputs).dataKey(globex), {
      message: "the credentials output has no dataKey for tenant globex",
    });
  });

  it("sees an update (rotation) and reads a loader function each time", async () => {
    const creds = new LocalOutputsCredentials(outputs);
    creds.update({ acme: { ...outputs.acme, rw: doc("acme", "rw", "rotated") } });
    assert.equal((await creds.fetch("acme", "rw")).password, "rotated");
    let password = "first";
    const loaded = new LocalOutputsCredentials(() => ({
      acme: { ...outputs.acme, rw: doc("acme", "rw", password) },
    }));
    assert.equal((await loaded.fetch("acme", "rw")).password, "first");
    password = "second";
    assert.equal((await loaded.fetch("acme", "rw")).password, "second");
  });

  it("reports an unreadable credentials file without its content", async () => {
    await assert.rejects(
      LocalOutputsCredentials.fromFile("/nonexistent/outputs.json").fetch("acme", "rw"),
      {
        message: /^cannot read credentials file \/nonexistent\/outputs.json: ENOENT/,
      },
    );
  });
});

describe("client: credentials cache", () => {
  function counting() {
    const calls: string[] = [];
    let password = "p1";
    const provider: CredentialsProvider = {
      fetch: async (id, login) => {
        calls.push(`${id}/${login}`);
        return doc(id, login, password);
      },
    };
    return { provider, calls, setPassword: (p: string) => (password = p) };
  }

  it("serves from cache within the TTL and fetches again after it", async () => {
    const { provider, calls, setPassword } = counting();
    let now = 1_000;
    const cache = new CredentialsCache(provider, 60_000, () => now);
    assert.equal((await cache.get("acme", "rw")).password, "p1");
    setPassword("p2");
    now += 59_999;
    assert.equal((await cache.get("acme", "rw")).password, "p1");
    now += 1;
    assert.equal((await cache.get("acme", "rw")).password, "p2");
    assert.deepEqual(calls, ["acme/rw", "acme/rw"]);
  });

  it("keys entries by tenant and login, shares concurrent fetches, and re-fetches after invalidate", async () => {
    const { provider, calls, setPassword } = counting();
    const cache = new CredentialsCache(provider, 60_000);
    await Promise.all([
      cache.get("acme", "rw"),
      cache.get("acme", "rw"),
      cache.get("acme", "ro"),
      cache.get("globex", "rw"),
    ]);
    assert.deepEqual(calls, ["acme/rw", "acme/ro", "globex/rw"]);
    setPassword("rotated");
    cache.invalidate("acme", "rw");
    assert.equal((await cache.get("acme", "rw")).password, "rotated");
    assert.equal((await cache.get("acme", "ro")).password, "p1");
    assert.deepEqual(calls, ["acme/rw", "acme/ro", "globex/rw", "acme/rw"]);
  });
});
