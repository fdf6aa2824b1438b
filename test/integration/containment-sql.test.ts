import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { DEFAULT_SERVER_CONFIG } from "../../infra/config";
import { serverSettings } from "../../infra/containment";
import { freePort } from "../../harness/fleet";
import { RunningCluster, startCluster } from "../../tools/cluster";
import { containmentScript } from "../../tools/containmentSql";

/**
 * `pg-tenants containment-sql` prints what an operator runs on a cluster the tools did not
 * start: run through psql as the superuser in a database that never had the containment (one
 * cloned from template0), it leaves that database contained like a tenant database.
 */

const TEMPLATE_SQL = path.join(
  __dirname,
  "..",
  "..",
  "templates",
  "customer",
  "migrations",
  "0001_customer_template_v1.sql",
);

describe("the containment SQL for operators", () => {
  let cluster: RunningCluster;
  let dir: string;
  const su = "superuser-password";
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-containment-sql-"));
    fs.chmodSync(dir, 0o755);
    cluster = await startCluster({
      tier: "standard",
      port: await freePort(),
      dataDir: path.join(dir, "standard"),
      superuserPassword: su,
      provisioner: { name: "pgtenants_provisioner", password: "provisioner-password" },
      template: { name: "customer_template_v1", sqlFile: TEMPLATE_SQL },
    });
  });
  afterAll(async () => {
    await cluster?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("contains a database that never had it, run by psql as printed", async () => {
    const admin = await cluster.superuserClient();
    try {
      await admin.query("CREATE DATABASE legacy TEMPLATE template0");
      await admin.query("CREATE ROLE legacy_login LOGIN");
    } finally {
      await admin.end();
    }
    const script = containmentScript(
      "pgtenants_provisioner",
      "customer_template_v1",
      17,
      serverSettings(DEFAULT_SERVER_CONFIG, 17),
    );
    const inDatabase = script.slice(script.indexOf("DO $contain$"));
    const file = path.join(dir, "contain.sql");
    fs.writeFileSync(file, inDatabase);
    const run = spawnSync(
      "psql",
      [
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
        "-q",
        "-h",
        cluster.host,
        "-p",
        String(cluster.port),
        "-U",
        "postgres",
        "-d",
        "legacy",
        "-f",
        file,
      ],
      { env: { ...process.env, PGPASSWORD: su }, encoding: "utf8" },
    );
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    const c = await cluster.superuserClient("legacy");
    try {
      const r = await c.query(
        `SELECT has_function_privilege('legacy_login', 'pg_advisory_lock(bigint)', 'EXECUTE') AS advisory,
                has_function_privilege('legacy_login', 'lo_create(oid)', 'EXECUTE') AS lo,
                has_table_privilege('legacy_login', 'pg_catalog.pg_stat_activity', 'SELECT') AS activity,
                has_function_privilege('pgtenants_provisioner', 'pg_advisory_lock(bigint)', 'EXECUTE') AS provisioner`,
      );
      expect(r.rows).toEqual([{ advisory: false, lo: false, activity: false, provisioner: true }]);
    } finally {
      await c.end();
    }
  });
});
