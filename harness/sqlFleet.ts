import { randomBytes } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Credentials } from "../infra/components/credentials";
import {
  DEFAULT_SERVER_CONFIG,
  parseStackConfig,
  ServerConfig,
  StackConfig,
} from "../infra/config";
import { renderHba } from "../infra/hba";
import type { Tenant } from "../infra/manifest";
import { buildFleetModel, FleetModel, TenantModel } from "../infra/model";
import { AuthEntry, PoolerOutput, poolerOutput, poolerSpec, renderAuthFile } from "../infra/pooler";
import { scramVerifier } from "../infra/scram";
import { inDatabaseSql, tenantSql } from "../infra/modelSql";
import { RunningCluster, startCluster } from "../tools/cluster";
import { FIRST_TEMPLATE_SQL } from "../tools/lib/migrations/files";
import { freePort, PROVISIONER, TEMPLATE } from "./fleet";

/**
 * Many tenants on one real cluster, made with SQL from the same tenant model the program
 * declares, for the figures the Pulumi harness is too slow for (hundreds or a thousand
 * tenants): login roles in their group with the SCRAM verifiers the program would set, the
 * database cloned from the template, PUBLIC's CONNECT revoked and granted to the group, and the
 * pg_hba.conf the program renders. With a `pooler`, also the PgBouncer configuration the
 * program would export for that cluster (infra/pooler.ts).
 */

export interface SqlFleetOptions {
  /** Tenant ids, all on tier `standard`. */
  ids: string[];
  /** Per-login connection limit (the tier's connectionLimit). */
  connectionLimit?: number;
  statementTimeoutMs?: number;
  server?: Partial<ServerConfig>;
  /** The cluster's `pooler` settings (host and sourceCidrs are filled in). */
  pooler?: Record<string, unknown>;
  pgVersion?: 15 | 17;
  /** Create this many tenants at once (default 4). */
  parallel?: number;
}

export interface SqlFleet {
  root: string;
  cluster: RunningCluster;
  /** The stack config these tenants were modelled with (stack `sql-fleet`). */
  cfg: StackConfig;
  /** The raw config (without namespace), as a stack file holds it. */
  config: Record<string, unknown>;
  fleet: FleetModel;
  models: TenantModel[];
  /** Per tenant, both logins' credentials (plain passwords). */
  credentials: Record<string, { rw: Credentials; ro: Credentials }>;
  provisionerPassword: string;
  /** With a pooler: its rendered output and auth file of the verifiers set as passwords. */
  pooler?: { output: PoolerOutput; auth: string };
  stop(): Promise<void>;
}

const secret = () => randomBytes(18).toString("base64url");

export async function provisionSqlFleet(opts: SqlFleetOptions): Promise<SqlFleet> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-sql-fleet-"));
  fs.chmodSync(root, 0o755);
  const port = await freePort();
  const provisionerPassword = secret();
  const server = { ...DEFAULT_SERVER_CONFIG, ...opts.server };
  const cluster = await startCluster({
    tier: "standard",
    port,
    dataDir: path.join(root, "standard"),
    superuserPassword: secret(),
    provisioner: { name: PROVISIONER, password: provisionerPassword },
    template: {
      name: TEMPLATE,
      sqlFile: path.join(__dirname, "..", FIRST_TEMPLATE_SQL),
    },
    pgVersion: opts.pgVersion,
    server,
  });
  try {
    const config: Record<string, unknown> = {
      template: TEMPLATE,
      tenantsDir: path.join(root, "tenants"),
      clusters: {
        standard: {
          host: cluster.host,
          port,
          username: PROVISIONER,
          sslmode: "disable",
          connectionLimit: opts.connectionLimit ?? 20,
          ...(opts.statementTimeoutMs !== undefined
            ? { statementTimeoutMs: opts.statementTimeoutMs }
            : {}),
          server: opts.server ?? {},
          ...(opts.pooler !== undefined
            ? {
                pooler: {
                  host: "127.0.0.1",
                  listenAddr: "127.0.0.1",
                  sourceCidrs: ["127.0.0.1/32"],
                  ...opts.pooler,
                },
              }
            : {}),
        },
      },
      keys: { provider: "local" },
      hba: {
        connectionType: "host",
        clientCidrs: ["127.0.0.1/32"],
        adminCidrs: ["127.0.0.1/32"],
        adminUsers: ["postgres"],
      },
    };
    const cfg = parseStackConfig("sql-fleet", config);
    const tenants: Tenant[] = opts.ids.map((id) => ({
      id,
      displayName: `Tenant ${id}`,
      tier: "standard",
      state: "active",
      file: `tenants/${id}.yaml`,
    }));
    const fleet = buildFleetModel(tenants, cfg);
    const models = fleet.tenants;
    const credentials: SqlFleet["credentials"] = {};
    const auth: AuthEntry[] = [];
    const admins = await Promise.all(
      Array.from({ length: opts.parallel ?? 4 }, () => cluster.superuserClient()),
    );
    let next = 0;
    try {
      await Promise.all(
        admins.map(async (admin) => {
          while (next < models.length) {
            const model = models[next++];
            const passwords = { rw: secret() + secret(), ro: secret() + secret() };
            const verifiers: Record<string, string> = {};
            for (const kind of ["rw", "ro"] as const) {
              verifiers[kind] = await scramVerifier(
                passwords[kind],
                randomBytes(16).toString("base64"),
              );
              auth.push({ user: model.names[kind], verifier: verifiers[kind] });
            }
            for (const statement of tenantSql(model, verifiers, (v) => admin.escapeLiteral(v)))
              await admin.query(statement);
            const login = (kind: "rw" | "ro"): Credentials => ({
              host: cluster.host,
              port,
              database: model.names.database,
              user: model.names[kind],
              password: passwords[kind],
              sslmode: "disable",
            });
            credentials[model.id] = { rw: login("rw"), ro: login("ro") };
          }
        }),
      );
    } finally {
      await Promise.all(admins.map((a) => a.end()));
    }
    // In-database grants need a session in each database: as the superuser, a few at a time.
    let nextDb = 0;
    await Promise.all(
      Array.from({ length: opts.parallel ?? 4 }, async () => {
        while (nextDb < models.length) {
          const model = models[nextDb++];
          const c = await cluster.superuserClient(model.database.name);
          try {
            for (const statement of inDatabaseSql(model)) await c.query(statement);
          } finally {
            await c.end();
          }
        }
      }),
    );
    const spec = poolerSpec(cfg, "standard", models);
    await cluster.writeHba(
      renderHba(
        "standard",
        PROVISIONER,
        cfg.hba,
        models,
        cfg.clusters.standard.pooler?.sourceCidrs,
      ),
    );
    return {
      root,
      cluster,
      cfg,
      config,
      fleet,
      models,
      credentials,
      provisionerPassword,
      ...(spec !== undefined
        ? { pooler: { output: poolerOutput(spec), auth: renderAuthFile(auth) } }
        : {}),
      async stop() {
        await cluster.stop();
        fs.rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await cluster.stop();
    fs.rmSync(root, { recursive: true, force: true });
    throw err;
  }
}
