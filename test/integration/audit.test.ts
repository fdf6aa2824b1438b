import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import type { AuditReport, Finding } from "../../tools/audit";
import { main } from "../../tools/audit";
import { cliArgs } from "../../harness/tool";
import { captureIo, passwordEnv, writeStackFile } from "../../harness/dayTwo";
import { connectAs, Fleet, FLEET_STACK, provisionFleet } from "../../harness/fleet";

/**
 * The audit against real clusters provisioned by the real program: a clean fleet audits clean,
 * and each tampering is reported with the tenant and the invariant it breaks, and nothing else.
 */

const TENANTS = [
  { id: "acme", tier: "standard" },
  { id: "initech", tier: "standard" },
  { id: "globex", tier: "premium" },
];

type Brief = Pick<Finding, "tier" | "tenant" | "invariant" | "message">;

describe("npm run audit against a provisioned fleet", () => {
  let fleet: Fleet;

  beforeAll(async () => {
    fleet = await provisionFleet({ tiers: ["standard", "premium"], tenants: TENANTS });
    writeStackFile(fleet);
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  async function audit(): Promise<{ code: number; report: AuditReport }> {
    const io = captureIo(fleet);
    const code = await main(["--stack", FLEET_STACK, "--format", "json"], io);
    assert.deepEqual(io.errors, []);
    return { code, report: JSON.parse(io.lines.join("\n")) as AuditReport };
  }

  const violations = (report: AuditReport): Brief[] =>
    report.findings
      .filter((f) => f.severity === "violation")
      .map(({ tier, tenant, invariant, message }) => ({ tier, tenant, invariant, message }));

  async function superuser<T>(
    tier: string,
    fn: (q: (sql: string) => Promise<unknown>) => Promise<T>,
  ): Promise<T> {
    const c = await fleet.clusters[tier].superuserClient();
    try {
      return await fn((sql) => c.query(sql));
    } finally {
      await c.end();
    }
  }

  it("finds every invariant holding on a fleet just provisioned (exit 0)", async () => {
    const { code, report } = await audit();
    assert.deepEqual(violations(report), []);
    assert.equal(code, 0);
    assert.equal(report.tenants, 3);
    assert.deepEqual(report.clusters, ["standard", "premium"]);
    // The provisioning role is no superuser: pg_hba_file_rules is out of its reach, and said so.
    assert.deepEqual(
      report.findings.map((f) => `${f.severity} ${f.tier} ${f.invariant}`),
      ["notice premium pg-hba-readable", "notice standard pg-hba-readable"],
    );
  });

  /** One tampering: SQL run as the superuser (in `database`, default postgres), then undone. */
  interface Tampering {
    what: string;
    tier: string;
    database?: string;
    tamper: string;
    undo: string;
    expected: Brief[];
  }
  const tamperings: Tampering[] = [
    {
      what: "CONNECT granted to PUBLIC on a tenant database",
      tier: "standard",
      tamper: "GRANT CONNECT ON DATABASE tenant_acme TO PUBLIC",
      undo: "REVOKE CONNECT ON DATABASE tenant_acme FROM PUBLIC",
      expected: [
        {
          tier: "standard",
          tenant: "acme",
          invariant: "public-no-connect-or-temp",
          message: "PUBLIC holds CONNECT on database tenant_acme",
        },
      ],
    },
    {
      what: "another tenant's group granted to a login, for both tenants",
      tier: "standard",
      tamper: "GRANT tenant_initech TO tenant_acme_rw",
      undo: "REVOKE tenant_initech FROM tenant_acme_rw",
      expected: [
        {
          tier: "standard",
          tenant: "acme",
          invariant: "membership",
          message: "role tenant_acme_rw is a member of tenant_initech, a role outside this tenant",
        },
        {
          tier: "standard",
          tenant: "initech",
          invariant: "membership",
          message: "role tenant_acme_rw is a member of tenant_initech",
        },
      ],
    },
    {
      what: "a tenant role made CREATEDB",
      tier: "premium",
      tamper: "ALTER ROLE tenant_globex_ro CREATEDB",
      undo: "ALTER ROLE tenant_globex_ro NOCREATEDB",
      expected: [
        {
          tier: "premium",
          tenant: "globex",
          invariant: "role-attributes",
          message: "role tenant_globex_ro has cluster privileges: createdb",
        },
      ],
    },
    {
      what: "a database no tenant explains, as a cluster finding",
      tier: "premium",
      tamper: "CREATE DATABASE stray_reports",
      undo: "DROP DATABASE stray_reports",
      expected: [
        {
          tier: "premium",
          tenant: undefined,
          invariant: "orphan-database",
          message: "database stray_reports is not explained by any tenant of the manifest",
        },
      ],
    },
    {
      what: "a table privilege granted to another tenant's login inside a tenant database",
      tier: "standard",
      database: "tenant_acme",
      tamper: "GRANT SELECT, TRUNCATE ON app.invoices TO tenant_initech_ro",
      undo: "REVOKE ALL ON app.invoices FROM tenant_initech_ro",
      expected: [
        {
          tier: "standard",
          tenant: "acme",
          invariant: "object-privileges",
          message: "tenant_initech_ro holds SELECT, TRUNCATE on table app.invoices",
        },
      ],
    },
  ];

  for (const t of tamperings) {
    it(`reports ${t.what}`, async () => {
      const run = async (sql: string) => {
        const c = await fleet.clusters[t.tier].superuserClient(t.database);
        try {
          await c.query(sql);
        } finally {
          await c.end();
        }
      };
      await run(t.tamper);
      try {
        const { code, report } = await audit();
        assert.equal(code, 1);
        assert.deepEqual(violations(report), t.expected);
      } finally {
        await run(t.undo);
      }
    });
  }

  it("reports extra database privileges and the schema a login then creates", async () => {
    await superuser("standard", async (q) => {
      await q("GRANT CREATE ON DATABASE tenant_acme TO tenant_acme_rw");
      await q("GRANT TEMP ON DATABASE tenant_acme TO tenant_initech_rw");
      await q("GRANT CREATE ON DATABASE tenant_initech TO PUBLIC");
    });
    // What the extra CREATE is good for: a schema outside the app schemas, owned by the login.
    const rw = await connectAs(fleet.outputs.credentials.acme.rw);
    try {
      await rw.query("CREATE SCHEMA sneaky");
    } finally {
      await rw.end();
    }
    try {
      const { code, report } = await audit();
      assert.equal(code, 1);
      assert.deepEqual(violations(report), [
        {
          tier: "standard",
          tenant: "acme",
          invariant: "database-privileges",
          message:
            "tenant_acme_rw holds CREATE on database tenant_acme; the model grants it nothing",
        },
        {
          tier: "standard",
          tenant: "acme",
          invariant: "database-privileges",
          message:
            "tenant_initech_rw holds TEMPORARY on database tenant_acme; the model grants it nothing",
        },
        {
          tier: "standard",
          tenant: "acme",
          invariant: "unexpected-schema",
          message: "schema sneaky in database tenant_acme is not an app schema (app)",
        },
        {
          tier: "standard",
          tenant: "initech",
          invariant: "database-privileges",
          message: "PUBLIC holds CREATE on database tenant_initech; the model grants it nothing",
        },
        // The schema differs from the template too (tools/audit/migrations.ts).
        {
          tier: "standard",
          tenant: "acme",
          invariant: "schema-drift",
          message:
            "database tenant_acme differs from template version 1: schema sneaky is not in the template",
        },
      ]);
    } finally {
      const c = await fleet.clusters.standard.superuserClient("tenant_acme");
      try {
        await c.query("DROP SCHEMA sneaky");
      } finally {
        await c.end();
      }
      await superuser("standard", async (q) => {
        await q("REVOKE CREATE ON DATABASE tenant_acme FROM tenant_acme_rw");
        await q("REVOKE TEMP ON DATABASE tenant_acme FROM tenant_initech_rw");
        await q("REVOKE CREATE ON DATABASE tenant_initech FROM PUBLIC");
      });
    }
    assert.deepEqual(violations((await audit()).report), []);
  });

  it("reports a dropped tenant database; the program run re-creates it and the audit is clean again", async () => {
    await superuser("standard", (q) => q("DROP DATABASE tenant_initech WITH (FORCE)"));
    const { code, report } = await audit();
    assert.equal(code, 1);
    assert.deepEqual(violations(report), [
      {
        tier: "standard",
        tenant: "initech",
        invariant: "database-exists",
        message: "database tenant_initech does not exist on cluster standard",
      },
    ]);
    await fleet.apply();
    const again = await audit();
    assert.deepEqual(violations(again.report), []);
    assert.equal(again.code, 0);
  });

  it("checks the pg_hba rules in effect where the auditing role may read them", async () => {
    await superuser("standard", async (q) => {
      await q("GRANT EXECUTE ON FUNCTION pg_hba_file_rules() TO pgtenants_provisioner");
      await q("GRANT SELECT ON pg_hba_file_rules TO pgtenants_provisioner");
    });
    const clean = await audit();
    assert.deepEqual(violations(clean.report), []);
    assert.deepEqual(
      clean.report.findings.map((f) => `${f.severity} ${f.tier} ${f.invariant}`),
      ["notice premium pg-hba-readable"],
    );

    const rendered = fleet.outputs.pgHba.standard;
    const lines = rendered.split("\n");
    const at = lines.findIndex((l) => l.startsWith("host tenant_acme "));
    lines.splice(
      at,
      0,
      "host tenant_acme tenant_initech_rw 127.0.0.1/32 scram-sha-256",
      "host all tenant_acme_rw 127.0.0.1/32 scram-sha-256",
    );
    await fleet.clusters.standard.writeHba(lines.join("\n"));
    try {
      const tampered = await audit();
      const hbaLine = at + 1;
      assert.deepEqual(violations(tampered.report), [
        {
          tier: "standard",
          tenant: undefined,
          invariant: "pg-hba",
          message: `pg_hba line ${hbaLine + 1} admits tenant_acme_rw to all databases`,
        },
        {
          tier: "standard",
          tenant: "acme",
          invariant: "pg-hba",
          message: `pg_hba line ${hbaLine} admits tenant_initech_rw to database tenant_acme`,
        },
      ]);
    } finally {
      await fleet.clusters.standard.writeHba(rendered);
    }
  });

  it("prints text by default and exits 1 from the command line on a violation", async () => {
    await superuser("standard", (q) => q("ALTER DATABASE tenant_acme CONNECTION LIMIT 500"));
    try {
      const run = spawnSync(process.execPath, cliArgs(["audit", "--stack", FLEET_STACK]), {
        cwd: fleet.root,
        env: { ...process.env, ...passwordEnv(fleet) },
        encoding: "utf8",
      });
      // Not a terminal: the progress display degrades to plain lines on stderr, one per step
      // (clusters are read in parallel, so their lines come in either order).
      const progress = run.stderr.trim().split("\n");
      assert.equal(progress[0], "audit: reading 2 cluster(s) of stack integration");
      assert.deepEqual(
        progress
          .slice(1)
          .map((l) => l.replace(/, \d\/2$/, ""))
          .sort(),
        [
          "audit: cluster premium read (1 tenant database(s))",
          "audit: cluster standard read (2 tenant database(s))",
        ],
      );
      assert.deepEqual(
        progress
          .slice(1)
          .map((l) => l.slice(-3))
          .sort(),
        ["1/2", "2/2"],
      );
      assert.equal(run.status, 1);
      const lines = run.stdout.trim().split("\n");
      assert.equal(
        lines[0],
        "audit of stack integration: 3 tenant(s) on 2 cluster(s) (standard, premium)",
      );
      assert.ok(
        lines.includes(
          "VIOLATION standard acme connection-limit: database tenant_acme has connection limit 500, expected 42",
        ),
        run.stdout,
      );
      assert.equal(lines.at(-1), "FAILED: 1 violation(s), 1 notice(s)");
    } finally {
      await superuser("standard", (q) => q("ALTER DATABASE tenant_acme CONNECTION LIMIT 42"));
    }
  });

  it("renders markdown", async () => {
    const io = captureIo(fleet);
    assert.equal(await main(["--stack", FLEET_STACK, "--format", "markdown"], io), 0);
    assert.equal(
      io.lines[0].split("\n")[0],
      "## audit of stack integration: 3 tenant(s) on 2 cluster(s) (standard, premium)",
    );
    assert.ok(io.lines[0].includes("| notice | premium |  | pg-hba-readable |"));
  });

  it("refuses a wrong password and an unreachable cluster with the cluster named, exit 1", async () => {
    const wrong = captureIo(fleet, { PGTENANTS_PASSWORD_PREMIUM: "not-the-password" });
    assert.equal(await main(["--stack", FLEET_STACK], wrong), 1);
    assert.deepEqual(wrong.errors, [
      `error: password authentication failed for pgtenants_provisioner on cluster "premium" at 127.0.0.1:${fleet.clusters.premium.port}: check PGTENANTS_PASSWORD_PREMIUM (the stack secret pg-tenants:clusterPasswords.premium)`,
    ]);
    assert.ok(!wrong.errors.join("").includes("not-the-password"));

    const missing = captureIo(fleet, { PGTENANTS_PASSWORD_STANDARD: undefined });
    assert.equal(await main(["--stack", FLEET_STACK], missing), 1);
    assert.deepEqual(missing.errors, [
      `error: No provisioning password for cluster "standard": set PGTENANTS_PASSWORD_STANDARD (the secret pg-tenants:clusterPasswords.standard of the stack).`,
    ]);

    const usage = captureIo(fleet);
    assert.equal(await main(["--stack", FLEET_STACK, "--format", "html"], usage), 2);
    assert.equal(
      usage.errors[0].split("\n")[0],
      "error: --format must be one of text, json, markdown",
    );

    await fleet.clusters.premium.stop();
    const down = captureIo(fleet);
    assert.equal(await main(["--stack", FLEET_STACK], down), 1);
    assert.deepEqual(down.errors, [
      `error: cannot reach cluster "premium" at 127.0.0.1:${fleet.clusters.premium.port}: connection refused (is the cluster running? for the local stack: npm run local)`,
    ]);
  });
});
