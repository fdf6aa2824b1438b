import { spawnSync } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Client } from "pg";
import { DEFAULT_SERVER_CONFIG, parseStackConfig } from "../infra/config";
import type { Tenant } from "../infra/manifest";
import { buildFleetModel, TenantModel } from "../infra/model";
import { quoteIdent } from "../infra/sql";
import { freePort, PROVISIONER } from "../harness/fleet";
import { startCluster } from "../tools/cluster";
import { FIRST_TEMPLATE_SQL, MIGRATIONS_DIR } from "../tools/lib/migrations/files";
import { TenantTarget, tenantTarget } from "../tools/lib/migrations/fleet";
import type { MigrateJob, MigrateResult } from "./workers/migrate";

/**
 * The migrate figures on one real cluster of 1,000 tenants (100 with --quick): the first run
 * (each history recorded), a run with nothing pending (the ledger), the same opening every
 * database (--verify), one small migration (a column with a default and an index) at the
 * default parallelism, and the drift check; each in a fresh process, with its peak RSS. The
 * tenants are made with SQL from the tenant model (roles, database from the template, grants,
 * default privileges, extensions), as the program would declare them: the Pulumi harness is too
 * slow for a thousand.
 */

const ROOT = path.join(__dirname, "..");
const secret = () => randomBytes(18).toString("base64url");

/** The SQL the provider would issue for one tenant, outside and inside its database. */
function tenantSql(m: TenantModel, c: Client): { cluster: string[]; inside: string[] } {
  const cluster: string[] = [];
  for (const role of m.roles) {
    const pw = role.login ? ` PASSWORD ${c.escapeLiteral(secret())}` : "";
    const inRole =
      role.memberOf.length > 0 ? ` IN ROLE ${role.memberOf.map(quoteIdent).join(", ")}` : "";
    cluster.push(
      `CREATE ROLE ${quoteIdent(role.name)} WITH ${role.login ? "LOGIN" : "NOLOGIN"} CONNECTION LIMIT ${role.connectionLimit}${pw}${inRole}`,
    );
  }
  // The provider's roles are the provisioning role's to SET: migrations run as the owner.
  cluster.push(`GRANT ${quoteIdent(m.names.owner)} TO ${quoteIdent(PROVISIONER)}`);
  const db = quoteIdent(m.database.name);
  cluster.push(
    `CREATE DATABASE ${db} OWNER ${quoteIdent(m.database.owner)} TEMPLATE ${quoteIdent(m.database.template)} STRATEGY FILE_COPY`,
  );
  for (const g of m.grants.filter((x) => x.objectType === "database")) {
    cluster.push(
      `REVOKE ALL ON DATABASE ${db} FROM ${g.role === "public" ? "PUBLIC" : quoteIdent(g.role)}`,
    );
    if (g.privileges.length > 0)
      cluster.push(`GRANT ${g.privileges.join(", ")} ON DATABASE ${db} TO ${quoteIdent(g.role)}`);
  }
  const inside: string[] = [];
  for (const g of m.grants.filter((x) => x.objectType !== "database")) {
    const on =
      g.objectType === "schema"
        ? `SCHEMA ${quoteIdent(g.schema ?? "")}`
        : `ALL ${g.objectType === "table" ? "TABLES" : "SEQUENCES"} IN SCHEMA ${quoteIdent(g.schema ?? "")}`;
    inside.push(`GRANT ${g.privileges.join(", ")} ON ${on} TO ${quoteIdent(g.role)}`);
  }
  for (const d of m.defaultPrivileges) {
    inside.push(
      `ALTER DEFAULT PRIVILEGES FOR ROLE ${quoteIdent(d.owner)} IN SCHEMA ${quoteIdent(d.schema)} GRANT ${d.privileges.join(", ")} ON ${d.objectType === "table" ? "TABLES" : "SEQUENCES"} TO ${quoteIdent(d.role)}`,
    );
  }
  for (const e of m.extensions) inside.push(`CREATE EXTENSION IF NOT EXISTS ${quoteIdent(e)}`);
  return { cluster, inside };
}

const SMALL =
  "ALTER TABLE app.customers ADD COLUMN tier text NOT NULL DEFAULT 'basic';\nCREATE INDEX customers_tier_idx ON app.customers (tier);\n";

export interface MigrateBench {
  markdown: string;
}

export async function benchMigrate(opts: { quick?: boolean } = {}): Promise<MigrateBench> {
  const n = opts.quick === true ? 100 : 1000;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-bench-migrate-"));
  fs.chmodSync(root, 0o755);
  const dir = path.join(root, MIGRATIONS_DIR);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(
    path.join(ROOT, FIRST_TEMPLATE_SQL),
    path.join(dir, path.basename(FIRST_TEMPLATE_SQL)),
  );
  const port = await freePort();
  const password = secret();
  const cluster = await startCluster({
    tier: "standard",
    port,
    dataDir: path.join(root, "standard"),
    superuserPassword: secret(),
    provisioner: { name: PROVISIONER, password },
    template: { name: "customer_template_v1", sqlFile: path.join(ROOT, FIRST_TEMPLATE_SQL) },
    // The bench opens up to 16 sessions at once besides the tenants' own limits.
    server: { ...DEFAULT_SERVER_CONFIG, maxConnections: 200 },
  });
  const rows: string[] = [];
  try {
    const cfg = parseStackConfig("bench", {
      template: "customer_template_v1",
      appSchemas: ["app"],
      clusters: {
        standard: {
          host: cluster.host,
          port,
          username: PROVISIONER,
          sslmode: "disable",
          connectionLimit: 1,
        },
      },
      keys: { provider: "local" },
      hba: { connectionType: "host", clientCidrs: ["127.0.0.1/32"], adminCidrs: ["127.0.0.1/32"] },
    });
    const ids = Array.from({ length: n }, (_, i) => `s${String(i).padStart(4, "0")}`);
    const models = buildFleetModel(
      ids.map((id): Tenant => ({
        id,
        displayName: id,
        tier: "standard",
        state: "active",
        file: `${id}.yaml`,
      })),
      cfg,
    ).tenants;
    const built = Date.now();
    const su = await Promise.all(Array.from({ length: 4 }, () => cluster.superuserClient()));
    let next = 0;
    await Promise.all(
      su.map(async (c) => {
        while (next < models.length) {
          const m = models[next++];
          const sql = tenantSql(m, c);
          for (const s of sql.cluster) await c.query(s);
          const inDb = await cluster.superuserClient(m.database.name);
          try {
            await inDb.query(sql.inside.join(";\n"));
          } finally {
            await inDb.end();
          }
        }
      }),
    );
    await Promise.all(su.map((c) => c.end()));
    console.error(
      `  ${n} tenants made with SQL from the model in ${((Date.now() - built) / 1000).toFixed(1)} s`,
    );
    const tenants: TenantTarget[] = models.map(tenantTarget);
    const target = {
      tier: "standard",
      host: cluster.host,
      port,
      user: PROVISIONER,
      password,
      sslmode: "disable" as const,
      connectTimeout: 30,
      database: "postgres",
    };
    const run = (
      label: string,
      goal: string,
      job: Omit<MigrateJob, "target" | "migrationsDir" | "tenants">,
    ) => {
      // The job goes through a file: a thousand tenants are more than one argument may hold.
      const jobFile = path.join(root, "job.json");
      fs.writeFileSync(jobFile, JSON.stringify({ ...job, target, migrationsDir: dir, tenants }), {
        mode: 0o600,
      });
      const r = spawnSync(
        process.execPath,
        [
          require.resolve("ts-node/dist/bin.js"),
          path.join(ROOT, "bench", "workers", "migrate.ts"),
          jobFile,
        ],
        { cwd: ROOT, encoding: "utf8", maxBuffer: 64 * 1024 * 1024, timeout: 20 * 60 * 1000 },
      );
      const line = (r.stdout ?? "").trim().split("\n").pop() ?? "";
      if (r.status !== 0 || !line.startsWith("{")) {
        throw new Error(
          `${label} failed (${r.signal ?? `exit ${r.status}`}): ${String(r.error ?? r.stderr)
            .trim()
            .slice(-600)}`,
        );
      }
      const m = JSON.parse(line) as MigrateResult;
      const outcome = Object.entries(m.counts)
        .map(([k, v]) => `${v} ${k}`)
        .join(", ");
      console.error(
        `  ${label}: ${(m.ms / 1000).toFixed(1)} s, peak RSS ${(m.maxRssKb / 1024).toFixed(0)} MB (${outcome})`,
      );
      rows.push(
        `| ${label} | ${job.parallel} | ${(m.ms / 1000).toFixed(1)} | ${goal} | ${(m.maxRssKb / 1024).toFixed(0)} | ${outcome} |`,
      );
    };
    console.error(`migrate on ${n} tenants of one cluster:`);
    run("first run: each history recorded (0001)", "-", {
      phase: "migrate",
      version: 1,
      parallel: 8,
    });
    run("nothing pending (the ledger)", "< 10 s", { phase: "migrate", version: 1, parallel: 8 });
    run("nothing pending, every database opened (--verify)", "-", {
      phase: "verify",
      version: 1,
      parallel: 8,
    });
    fs.writeFileSync(path.join(dir, "0002_customer_tier.sql"), SMALL);
    run("one small migration (0002: column with a default, index)", "< 60 s", {
      phase: "migrate",
      version: 2,
      parallel: 8,
    });
    run("drift check against customer_template_v2", "< 30 s", {
      phase: "check",
      version: 2,
      parallel: 8,
    });
  } finally {
    await cluster.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
  const markdown = [
    `### Fleet migrations (${n} tenants on one cluster, embedded PostgreSQL 17)`,
    "",
    "Each row is a fresh process running what `pg-tenants migrate` runs (through ts-node, whose",
    "own memory is in the peak RSS); seconds are the run's, without the process start (the cli",
    "section has that); parallel is tenants at once on the cluster.",
    "",
    "| run | parallel | seconds | goal | peak RSS (MB) | outcome |",
    "| --- | ---: | ---: | --- | ---: | --- |",
    ...rows,
    "",
  ].join("\n");
  return { markdown };
}

if (require.main === module) {
  benchMigrate({ quick: process.argv.includes("--quick") }).then(
    (r) => console.log(r.markdown),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : String(e));
      process.exitCode = 1;
    },
  );
}
