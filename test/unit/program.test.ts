import assert from "node:assert/strict";
import { beforeAll, describe, it } from "@jest/globals";
import * as pulumi from "@pulumi/pulumi";
import { scramVerifier } from "../../infra/scram";
import { mockedOutputs, RecordingMocks, resolve } from "../../harness/mocks";
import { ofTenant, ProgramRun, runProgram, TenantSpec, unwrapSecrets } from "../../harness/program";

const THREE: TenantSpec[] = [
  { id: "acme", tier: "standard" },
  {
    id: "globex",
    tier: "premium",
    extra: "limits:\n  connectionLimit: 40\n  statementTimeoutMs: 60000\n",
  },
  { id: "initech", tier: "standard" },
];
const IDS = THREE.map((t) => t.id);

const ROLE = "postgresql:index/role:Role";

/** The base64 the mocks give a login's salt. */
const mockedSalt = (name: string) =>
  String(
    mockedOutputs({
      type: "random:index/randomBytes:RandomBytes",
      name,
      inputs: {},
    } as unknown as pulumi.runtime.MockResourceArgs).base64,
  );
const GRANT = "postgresql:index/grant:Grant";
const DEFAULTS = "postgresql:index/defaultPrivileges:DefaultPrivileges";

/** The resources one tenant gets with the local key provider, as `type name` lines. */
function expectedLocal(id: string, tier: string): string[] {
  const p = `${id}@${tier}`;
  return [
    `pg-tenants:index:Tenant ${id}`,
    `random:index/randomPassword:RandomPassword ${id}-rw-password`,
    `random:index/randomPassword:RandomPassword ${id}-ro-password`,
    `random:index/randomBytes:RandomBytes ${id}-rw-salt`,
    `random:index/randomBytes:RandomBytes ${id}-ro-salt`,
    `pg-tenants:index:TenantKey ${id}-key`,
    `random:index/randomBytes:RandomBytes ${id}-key-data`,
    `pg-tenants:index:TenantPlacement ${p}`,
    `${ROLE} ${p}-role-group`,
    `${ROLE} ${p}-role-owner`,
    `${ROLE} ${p}-role-rw`,
    `${ROLE} ${p}-role-ro`,
    `postgresql:index/grantRole:GrantRole ${p}-provisioner-owner`,
    `postgresql:index/database:Database ${p}-db`,
    `${GRANT} ${p}-grant-public-revoke`,
    `${GRANT} ${p}-grant-group-connect`,
    `${GRANT} ${p}-grant-app-usage`,
    `${GRANT} ${p}-grant-app-tables-rw`,
    `${GRANT} ${p}-grant-app-sequences-rw`,
    `${GRANT} ${p}-grant-app-tables-ro`,
    `${GRANT} ${p}-grant-app-sequences-ro`,
    `${DEFAULTS} ${p}-default-app-tables-rw`,
    `${DEFAULTS} ${p}-default-app-sequences-rw`,
    `${DEFAULTS} ${p}-default-app-tables-ro`,
    `${DEFAULTS} ${p}-default-app-sequences-ro`,
    `postgresql:index/extension:Extension ${p}-ext-pgcrypto`,
    `pg-tenants:index:TenantCredentials ${id}-credentials`,
  ];
}

const AWS_EXTRA = (id: string) => [
  `aws:kms/key:Key ${id}-key-kms`,
  `aws:kms/alias:Alias ${id}-key-alias`,
  `aws:kms/ciphertext:Ciphertext ${id}-key-data-ciphertext`,
  `aws:secretsmanager/secret:Secret ${id}-credentials-rw`,
  `aws:secretsmanager/secretVersion:SecretVersion ${id}-credentials-rw-version`,
  `aws:secretsmanager/secret:Secret ${id}-credentials-ro`,
  `aws:secretsmanager/secretVersion:SecretVersion ${id}-credentials-ro-version`,
];

/** No input of a tenant's resources mentions another tenant of the run. */
function assertNoCrossTenantReferences(run: ProgramRun): void {
  let checked = 0;
  for (const id of IDS) {
    const others = IDS.filter((o) => o !== id);
    for (const r of ofTenant(run.registrations, id)) {
      const text = JSON.stringify(r.inputs);
      for (const other of others) assert.ok(!text.includes(other), `${r.name} mentions ${other}`);
      checked++;
    }
  }
  assert.equal(
    checked,
    run.registrations.length - 2,
    "every resource but the providers is a tenant's",
  );
}

const lines = (run: ProgramRun, id: string) =>
  ofTenant(run.registrations, id)
    .map((r) => `${r.type} ${r.name}`)
    .sort();

const inputs = (run: ProgramRun, name: string) => unwrapSecrets(run.mocks.named(name).inputs);

describe("the program with the local key provider, three tenants over two tiers", () => {
  let run: ProgramRun;
  beforeAll(async () => {
    run = await runProgram("local", THREE);
  });

  it("declares exactly one provider per cluster and the resources of each tenant, nothing else", () => {
    const tierOf = Object.fromEntries(THREE.map((t) => [t.id, t.tier]));
    for (const id of IDS)
      assert.deepEqual(lines(run, id), expectedLocal(id, tierOf[id]).sort(), id);
    const providers = run.registrations.filter((r) => r.type === "pulumi:providers:postgresql");
    assert.deepEqual(
      providers.map((p) => p.name),
      ["cluster-standard", "cluster-premium"],
    );
    assert.equal(run.registrations.length, 2 + 3 * 27);
  });

  it("configures each cluster's provider as the non-superuser provisioning role", () => {
    assert.deepEqual(inputs(run, "cluster-standard"), {
      host: "127.0.0.1",
      port: "55432",
      database: "postgres",
      username: "pgtenants_provisioner",
      password: { secret: "provisioner-password-standard" },
      sslmode: "disable",
      superuser: "false",
      maxConnections: "4",
      connectTimeout: "15",
    });
  });

  it("puts every placement resource on its tier's cluster", () => {
    const urn = (tier: string) =>
      `urn:pulumi:local::pg-tenants::pulumi:pulumi:Stack$pulumi:providers:postgresql::cluster-${tier}::cluster-${tier}-id`;
    for (const t of THREE) {
      const pg = ofTenant(run.registrations, t.id).filter((r) => r.type.startsWith("postgresql:"));
      assert.equal(pg.length, 18);
      for (const r of pg) assert.equal(r.provider, urn(t.tier), r.name);
    }
  });

  it("declares the roles of the isolation model, without cluster privileges", async () => {
    const base = {
      inherit: true,
      superuser: false,
      createDatabase: false,
      createRole: false,
      replication: false,
      bypassRowLevelSecurity: false,
      roles: [],
    };
    assert.deepEqual(inputs(run, "acme@standard-role-group"), {
      ...base,
      name: "tenant_acme",
      login: false,
      connectionLimit: 0,
    });
    assert.deepEqual(inputs(run, "acme@standard-role-owner"), {
      ...base,
      name: "tenant_acme_owner",
      login: false,
      connectionLimit: 0,
    });
    for (const login of ["rw", "ro"]) {
      assert.deepEqual(inputs(run, `acme@standard-role-${login}`), {
        ...base,
        name: `tenant_acme_${login}`,
        login: true,
        connectionLimit: 20,
        // The SCRAM verifier of the generated password under the login's own salt (infra/scram.ts).
        password: {
          secret: await scramVerifier(
            `pw-acme-${login}-password`,
            mockedSalt(`acme-${login}-salt`),
          ),
        },
        roles: ["tenant_acme"],
        statementTimeout: 30000,
      });
    }
    // The tenant file's limits win over the tier's defaults.
    const globexRw = inputs(run, "globex@premium-role-rw") as Record<string, unknown>;
    assert.equal(globexRw.connectionLimit, 40);
    assert.equal(globexRw.statementTimeout, 60000);
  });

  it("clones the database from the template, owned by the owner role", () => {
    assert.deepEqual(inputs(run, "acme@standard-db"), {
      name: "tenant_acme",
      owner: "tenant_acme_owner",
      template: "customer_template_v1",
      // Both logins' limits (20 each on the tier) and the provisioning role's two sessions.
      connectionLimit: 42,
      allowConnections: true,
      isTemplate: false,
    });
    assert.deepEqual(inputs(run, "acme@standard-provisioner-owner"), {
      role: "pgtenants_provisioner",
      grantRole: "tenant_acme_owner",
      withAdminOption: false,
    });
  });

  it("revokes PUBLIC, grants CONNECT to the group alone and DML/SELECT per login", () => {
    const grant = (key: string) => inputs(run, `acme@standard-grant-${key}`);
    const db = { database: "tenant_acme" };
    assert.deepEqual(grant("public-revoke"), {
      ...db,
      role: "public",
      objectType: "database",
      privileges: [],
    });
    assert.deepEqual(grant("group-connect"), {
      ...db,
      role: "tenant_acme",
      objectType: "database",
      privileges: ["CONNECT"],
    });
    assert.deepEqual(grant("app-usage"), {
      ...db,
      role: "tenant_acme",
      schema: "app",
      objectType: "schema",
      privileges: ["USAGE"],
    });
    const app = { ...db, schema: "app" };
    assert.deepEqual(grant("app-tables-rw"), {
      ...app,
      role: "tenant_acme_rw",
      objectType: "table",
      privileges: ["DELETE", "INSERT", "SELECT", "UPDATE"],
    });
    assert.deepEqual(grant("app-sequences-rw"), {
      ...app,
      role: "tenant_acme_rw",
      objectType: "sequence",
      privileges: ["SELECT", "UPDATE", "USAGE"],
    });
    assert.deepEqual(grant("app-tables-ro"), {
      ...app,
      role: "tenant_acme_ro",
      objectType: "table",
      privileges: ["SELECT"],
    });
    assert.deepEqual(grant("app-sequences-ro"), {
      ...app,
      role: "tenant_acme_ro",
      objectType: "sequence",
      privileges: ["SELECT"],
    });
    for (const r of run.registrations.filter((x) => x.type === GRANT)) {
      const privileges = r.inputs.privileges as string[];
      assert.ok(!privileges.includes("ALL"), `${r.name} must list privileges, never ALL`);
      if (r.inputs.role === "public")
        assert.deepEqual(privileges, [], `${r.name} grants to PUBLIC`);
    }
  });

  it("sets default privileges for what the owner creates later", () => {
    assert.deepEqual(inputs(run, "acme@standard-default-app-tables-ro"), {
      role: "tenant_acme_ro",
      database: "tenant_acme",
      owner: "tenant_acme_owner",
      schema: "app",
      objectType: "table",
      privileges: ["SELECT"],
    });
    assert.deepEqual(inputs(run, "acme@standard-default-app-sequences-rw"), {
      role: "tenant_acme_rw",
      database: "tenant_acme",
      owner: "tenant_acme_owner",
      schema: "app",
      objectType: "sequence",
      privileges: ["SELECT", "UPDATE", "USAGE"],
    });
    assert.deepEqual(inputs(run, "acme@standard-ext-pgcrypto"), {
      name: "pgcrypto",
      database: "tenant_acme",
      createCascade: false,
      dropCascade: false,
    });
  });

  it("chains every statement on a tenant database after the one before it", () => {
    const p = "acme@standard";
    const chain = [
      "db",
      "grant-public-revoke",
      "grant-group-connect",
      "grant-app-usage",
      "grant-app-tables-rw",
      "grant-app-sequences-rw",
      "grant-app-tables-ro",
      "grant-app-sequences-ro",
      "default-app-tables-rw",
      "default-app-sequences-rw",
      "default-app-tables-ro",
      "default-app-sequences-ro",
      "ext-pgcrypto",
    ].map((s) => `${p}-${s}`);
    for (let i = 1; i < chain.length; i++) {
      const seen = run.options.get(chain[i]);
      assert.deepEqual(seen?.dependsOn, [chain[i - 1]], chain[i]);
      assert.equal(seen?.deletedWith, `${p}-db`, chain[i]);
    }
    assert.deepEqual(run.options.get(`${p}-db`)?.dependsOn, [`${p}-provisioner-owner`]);
  });

  it("protects and retains databases and ignores template changes", () => {
    for (const t of THREE) {
      const seen = run.options.get(`${t.id}@${t.tier}-db`);
      assert.equal(seen?.protect, true);
      assert.equal(seen?.retainOnDelete, true);
      assert.deepEqual(seen?.ignoreChanges, ["template"]);
    }
    // Nothing else is protected: roles and grants must stay changeable.
    const protectedNames = [...run.options].filter(([, o]) => o.protect === true).map(([n]) => n);
    assert.deepEqual(protectedNames.sort(), [
      "acme@standard-db",
      "globex@premium-db",
      "initech@standard-db",
    ]);
  });

  it("references no other tenant's names in any tenant resource", () => {
    assertNoCrossTenantReferences(run);
  });

  it("leaves the statement timeout unset where a tenant asks for none (0)", async () => {
    const zero = await runProgram("local", [
      { id: "acme", tier: "standard", extra: "limits:\n  statementTimeoutMs: 0\n" },
    ]);
    const rw = inputs(zero, "acme@standard-role-rw") as Record<string, unknown>;
    assert.equal(rw.login, true);
    assert.ok(!("statementTimeout" in rw), "a 0 timeout is the provider's RESET, not a value");
  });

  it("exports names in plain text and every password and data key only as a secret", async () => {
    assert.deepEqual(run.outputs.tenants.acme, {
      displayName: "Tenant acme",
      cluster: "standard",
      host: "127.0.0.1",
      port: 55432,
      database: "tenant_acme",
      roles: {
        group: "tenant_acme",
        owner: "tenant_acme_owner",
        rw: "tenant_acme_rw",
        ro: "tenant_acme_ro",
      },
      keyProvider: "local",
      pooler: { host: "127.0.0.1", port: 56432 },
    });
    const plain = JSON.stringify([run.outputs.tenants, run.outputs.pgHba, run.outputs.pooler]);
    assert.ok(!plain.includes("pw-"), "no password in plain outputs");
    assert.ok(!plain.includes("SCRAM-SHA-256$"), "no verifier in plain outputs");
    const credentials = await resolve(run.outputs.credentials!);
    assert.equal(credentials.secret, true);
    assert.deepEqual(Object.keys(credentials.value).sort(), IDS);
    const acme = credentials.value.acme;
    assert.deepEqual(acme.rw, {
      host: "127.0.0.1",
      port: 55432,
      database: "tenant_acme",
      user: "tenant_acme_rw",
      password: "pw-acme-rw-password",
      sslmode: "disable",
    });
    assert.equal(acme.ro.user, "tenant_acme_ro");
    assert.equal(Buffer.from(acme.dataKey, "base64").length, 32);
    const logins = run.registrations.filter((x) => x.type === ROLE && x.inputs.login === true);
    assert.equal(logins.length, 6, "two logins per tenant");
    for (const r of logins) {
      const pw = r.inputs.password as Record<string, unknown>;
      assert.equal(
        pw["4dabf18193072939515e22adb298388d"],
        "1b47061264138c4ac30d75fd1eb44270",
        `${r.name} password secret`,
      );
    }
  });

  it("renders each cluster's pg_hba from its tenants only", () => {
    assert.equal(
      run.outputs.pgHba.standard,
      [
        '# pg_hba.conf of cluster "standard", rendered by pg-tenants from the tenants manifest.',
        "# Do not edit by hand: change tenants/ or the stack config and render again.",
        "# TYPE  DATABASE  USER  ADDRESS  METHOD",
        "host all pgtenants_provisioner 127.0.0.1/32 scram-sha-256",
        "host all postgres 127.0.0.1/32 scram-sha-256",
        "host tenant_acme +tenant_acme 127.0.0.1/32 scram-sha-256",
        "host tenant_initech +tenant_initech 127.0.0.1/32 scram-sha-256",
        "local all all reject",
        "host all all all reject",
        "",
      ].join("\n"),
    );
    assert.equal(
      run.outputs.pgHba.premium,
      [
        '# pg_hba.conf of cluster "premium", rendered by pg-tenants from the tenants manifest.',
        "# Do not edit by hand: change tenants/ or the stack config and render again.",
        "# TYPE  DATABASE  USER  ADDRESS  METHOD",
        "host all pgtenants_provisioner 127.0.0.1/32 scram-sha-256",
        "host all postgres 127.0.0.1/32 scram-sha-256",
        "host tenant_globex +tenant_globex 127.0.0.1/32 scram-sha-256",
        "local all all reject",
        "host all all all reject",
        "",
      ].join("\n"),
    );
  });
});

describe("adding a tenant", () => {
  it("leaves the first three tenants' registered inputs identical", async () => {
    const before3 = await runProgram("local", THREE);
    const after4 = await runProgram("local", [...THREE, { id: "hooli", tier: "premium" }]);
    for (const id of IDS) {
      // By name: logins register once their verifiers are computed, in either order.
      const byName = (run: ProgramRun) =>
        ofTenant(run.registrations, id)
          .map((r) => [r.type, r.name, r.provider, r.inputs])
          .sort((x, y) => String(x[1]).localeCompare(String(y[1])));
      const a = byName(before3);
      const b = byName(after4);
      assert.deepEqual(b, a, id);
    }
    assert.deepEqual(lines(after4, "hooli"), expectedLocal("hooli", "premium").sort());
  });
});

describe("the program with the aws-kms key provider", () => {
  let run: ProgramRun;
  beforeAll(async () => {
    run = await runProgram("production", THREE, { shard: undefined });
  });

  it("adds a KMS key, alias, data-key ciphertext and two secrets per tenant", () => {
    for (const t of THREE) {
      assert.deepEqual(
        lines(run, t.id),
        [...expectedLocal(t.id, t.tier), ...AWS_EXTRA(t.id)].sort(),
      );
    }
    assert.equal(run.registrations.length, 2 + 3 * 34);
  });

  it("declares the key with rotation, a deletion window, tags and protection", () => {
    assert.deepEqual(inputs(run, "acme-key-kms"), {
      description: "pg-tenants data key of tenant acme",
      enableKeyRotation: true,
      deletionWindowInDays: 30,
      keyUsage: "ENCRYPT_DECRYPT",
      tags: { "pg-tenants:tenant": "acme", "pg-tenants:stack": "production" },
    });
    assert.equal(run.options.get("acme-key-kms")?.protect, true);
    assert.equal(run.options.get("acme-key-kms")?.retainOnDelete, true);
    assert.deepEqual(inputs(run, "acme-key-alias"), {
      name: "alias/pg-tenants/production/acme",
      targetKeyId: "key-acme-key-kms",
    });
    assert.deepEqual(inputs(run, "acme-key-data-ciphertext"), {
      keyId: "key-acme-key-kms",
      plaintext: { secret: Buffer.from("key-acme-key-data".padEnd(32, "k")).toString("base64") },
      context: { tenant: "acme" },
    });
  });

  it("stores each login's credentials in a secret encrypted with the tenant's own key", () => {
    assert.deepEqual(inputs(run, "acme-credentials-rw"), {
      name: "pg-tenants/production/acme/rw",
      description: "pg-tenants rw credentials of tenant acme",
      kmsKeyId: "arn:aws:kms:eu-west-1:123456789012:key/acme-key-kms",
      tags: {
        "pg-tenants:tenant": "acme",
        "pg-tenants:stack": "production",
        "pg-tenants:login": "rw",
      },
    });
    const version = inputs(run, "acme-credentials-ro-version") as {
      secretId: string;
      secretString: { secret: string };
    };
    assert.equal(version.secretId, "acme-credentials-ro-id");
    assert.deepEqual(JSON.parse(version.secretString.secret), {
      host: "standard.db.internal.example.com",
      port: 5432,
      database: "tenant_acme",
      user: "tenant_acme_ro",
      password: "pw-acme-ro-password",
      sslmode: "verify-full",
      dataKeyCiphertext: "ciphertext-of-acme-key-data-ciphertext",
    });
  });

  it("references no other tenant's names in any tenant resource, keys and secrets included", () => {
    assertNoCrossTenantReferences(run);
  });

  it("exports the key alias and secret ARNs, and no credentials output", async () => {
    const acme = run.outputs.tenants.acme;
    assert.equal(acme.keyAlias, "alias/pg-tenants/production/acme");
    const arns = await resolve(pulumi.output(acme.credentialsSecretArns!));
    assert.deepEqual(arns.value, {
      rw: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:acme-credentials-rw",
      ro: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:acme-credentials-ro",
    });
    assert.equal(run.outputs.credentials, undefined);
  });
});

describe("invalid input", () => {
  it("fails before any resource is declared", async () => {
    const mocks = new RecordingMocks();
    await assert.rejects(
      runProgram("local", [...THREE, { id: "Evil", tier: "standard" }], {}, mocks),
      (e: Error) =>
        /^The tenants manifest has 1 problem\(s\):\n {2}- \S*Evil\.yaml: id: must match \^\[a-z\]\[a-z0-9_\]\*\$ \(a lowercase letter, then lowercase letters, digits or _\)$/.test(
          e.message,
        ),
    );
    assert.deepEqual(
      mocks.registrations.map((r) => r.type),
      ["pulumi:pulumi:Stack"],
      "only the root stack may exist when the manifest is invalid",
    );
  });

  it("refuses provisioning passwords that are not an object", async () => {
    await assert.rejects(
      runProgram("local", THREE, { clusterPasswords: null }),
      (e: Error) =>
        e.message ===
        "Stack config stacks/Pulumi.local.yaml is invalid:\n  - stacks/Pulumi.local.yaml: pg-tenants:clusterPasswords: must be an object {tier: password}",
    );
  });

  it("names the tier whose provisioning password is missing", async () => {
    await assert.rejects(
      runProgram("local", THREE, { clusterPasswords: { standard: "x" } }),
      (e: Error) =>
        e.message ===
        "Stack config stacks/Pulumi.local.yaml is invalid:\n  - stacks/Pulumi.local.yaml: pg-tenants:clusterPasswords.premium: missing; set it with: pulumi config set --secret --path 'clusterPasswords.premium' <password>",
    );
  });
});
