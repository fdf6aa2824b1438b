import assert from "node:assert/strict";
import { describe, it } from "@jest/globals";
import { parseStackConfig } from "../../infra/config";
import { InputError } from "../../infra/issues";
import { readStackFile } from "../../tools/stack";

const base = () => readStackFile("local").raw;

function problems(raw: Record<string, unknown>): string[] {
  try {
    parseStackConfig("local", raw);
  } catch (e) {
    assert.ok(e instanceof InputError, String(e));
    return e.issues.map((i) => `${i.file}: ${i.field}: ${i.message}`);
  }
  return [];
}

describe("parseStackConfig", () => {
  it("reads the local stack with its defaults", () => {
    const cfg = parseStackConfig("local", base());
    assert.equal(cfg.stack, "local");
    assert.equal(cfg.namePrefix, "tenant_");
    assert.equal(cfg.template, "customer_template_v1");
    assert.deepEqual(cfg.appSchemas, ["app"]);
    assert.equal(cfg.tenantsDir, "tenants");
    assert.deepEqual(Object.keys(cfg.clusters), ["standard", "premium"]);
    assert.deepEqual(cfg.clusters.standard, {
      host: "127.0.0.1",
      port: 55432,
      database: "postgres",
      username: "pgtenants_provisioner",
      sslmode: "disable",
      maxConnections: 4,
      connectTimeout: 15,
      connectionLimit: 20,
      statementTimeoutMs: 30000,
      server: {
        maxConnections: 200,
        superuserReservedConnections: 3,
        reservedConnections: 5,
        overcommit: 1,
        tempFileLimitMb: 1024,
        idleSessionTimeoutMs: 900000,
        idleInTransactionSessionTimeoutMs: 300000,
        authenticationTimeoutS: 5,
      },
      pooler: {
        host: "127.0.0.1",
        port: 56432,
        listenAddr: "127.0.0.1",
        sourceCidrs: ["127.0.0.1/32"],
        poolSize: 4,
        maxDbConnections: 6,
        rwMaxConnections: 4,
        roMaxConnections: 2,
        maxClientConnections: 2000,
        queryWaitTimeoutMs: 30000,
        serverIdleTimeoutMs: 60000,
        paths: {},
      },
      advice: {
        maxLoadShare: 0.5,
        minLoadMsPerSecond: 50,
        maxConnectionUse: 0.8,
        maxSizeMb: 10240,
      },
      capabilities: { advisoryLocks: false, largeObjects: false },
    });
    assert.deepEqual(cfg.keys, {
      provider: "local",
      aliasPrefix: "pg-tenants",
      deletionWindowDays: 30,
    });
    assert.deepEqual(cfg.hba, {
      connectionType: "host",
      clientCidrs: ["127.0.0.1/32"],
      adminCidrs: ["127.0.0.1/32"],
      adminUsers: ["postgres"],
    });
  });

  it("reads the production example", () => {
    const cfg = parseStackConfig("production", readStackFile("production").raw);
    assert.equal(cfg.keys.provider, "aws-kms");
    assert.equal(cfg.clusters.premium.sslmode, "verify-full");
    assert.equal(cfg.hba.connectionType, "hostssl");
  });

  const F = "stacks/Pulumi.local.yaml";
  const cases: Array<[string, (raw: Record<string, unknown>) => void, string[]]> = [
    [
      "an unknown setting",
      (r) => (r.colour = "blue"),
      [
        `${F}: pg-tenants:colour: unknown setting; allowed: namePrefix, template, appSchemas, tenantsDir, clusters, keys, hba, retentionDays, shard, clusterPasswords`,
      ],
    ],
    [
      "a missing template",
      (r) => delete r.template,
      [`${F}: pg-tenants:template: must be a string`],
    ],
    [
      "a port out of range",
      (r) => ((r.clusters as Record<string, Record<string, unknown>>).standard.port = 70000),
      [`${F}: pg-tenants:clusters.standard.port: must be from 1 to 65535`],
    ],
    [
      "an unknown sslmode",
      (r) => ((r.clusters as Record<string, Record<string, unknown>>).premium.sslmode = "prefer"),
      [
        `${F}: pg-tenants:clusters.premium.sslmode: must be one of disable, require, verify-ca, verify-full`,
      ],
    ],
    [
      "an unknown cluster field",
      (r) => ((r.clusters as Record<string, Record<string, unknown>>).premium.user = "x"),
      [
        `${F}: pg-tenants:clusters.premium.user: unknown field; allowed: host, port, database, username, sslmode, maxConnections, connectTimeout, connectionLimit, statementTimeoutMs, server, pooler, advice, capabilities`,
      ],
    ],
    [
      "a provisioning username that is not an identifier",
      (r) =>
        ((r.clusters as Record<string, Record<string, unknown>>).standard.username = "bob; --"),
      [`${F}: pg-tenants:clusters.standard.username: must match ^[a-z_][a-z0-9_]*$`],
    ],
    [
      "a tier name that is not an identifier",
      (r) =>
        ((r.clusters as Record<string, unknown>)["Gold Tier"] = (
          r.clusters as Record<string, unknown>
        ).standard),
      [`${F}: pg-tenants:clusters.Gold Tier: tier names must match ^[a-z][a-z0-9_]*$`],
    ],
    [
      "no tiers",
      (r) => (r.clusters = {}),
      [`${F}: pg-tenants:clusters: must declare at least one tier`],
    ],
    [
      "an unknown key provider",
      (r) => (r.keys = { provider: "vault" }),
      [`${F}: pg-tenants:keys.provider: must be local or aws-kms`],
    ],
    [
      "a KMS deletion window out of range",
      (r) => (r.keys = { provider: "aws-kms", deletionWindowDays: 3 }),
      [`${F}: pg-tenants:keys.deletionWindowDays: must be from 7 to 30 (the KMS limits)`],
    ],
    [
      "a CIDR that is not one",
      (r) => ((r.hba as Record<string, unknown>).clientCidrs = ["everywhere"]),
      [`${F}: pg-tenants:hba.clientCidrs.0: must be a CIDR such as 10.0.0.0/16 or fd00::/8`],
    ],
    [
      "a prefix without a trailing underscore",
      (r) => (r.namePrefix = "tenant"),
      [`${F}: pg-tenants:namePrefix: must match ^[a-z][a-z0-9_]*_$ (e.g. tenant_)`],
    ],
  ];
  for (const [what, change, expected] of cases) {
    it(`refuses ${what} with a located message`, () => {
      const raw = base();
      change(raw);
      assert.deepEqual(problems(raw), expected);
    });
  }
});

describe("stack config: retentionDays", () => {
  it("defaults to 30 days and accepts 0", () => {
    assert.equal(parseStackConfig("local", base()).retentionDays, 30);
    assert.equal(parseStackConfig("local", { ...base(), retentionDays: 0 }).retentionDays, 0);
  });
  it("refuses a negative or fractional period", () => {
    for (const [value, message] of [
      [-1, "must be 0 or more days"],
      [1.5, "must be a whole number of days"],
      ["30", "must be a number"],
    ] as const) {
      assert.throws(
        () => parseStackConfig("local", { ...base(), retentionDays: value }),
        (e: unknown) =>
          e instanceof InputError &&
          e.issues.length === 1 &&
          e.issues[0].field === "pg-tenants:retentionDays" &&
          e.issues[0].message === message,
      );
    }
  });
});
