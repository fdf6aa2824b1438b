import { randomBytes } from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { Credentials } from "../infra/components/credentials";
import type { TenantSummary } from "../infra/components/tenant";
import {
  DEFAULT_SERVER_CONFIG,
  parseStackConfig,
  ServerConfig,
  StackConfig,
} from "../infra/config";
import { renderHba } from "../infra/hba";
import type { PoolerOutput } from "../infra/pooler";
import type { FleetOutputs } from "../infra/program";
import { Client } from "pg";
import { RunningCluster, startCluster } from "../tools/cluster";
import { FIRST_TEMPLATE_SQL, MIGRATIONS_DIR } from "../tools/lib/migrations/files";
import { recordReferences } from "../tools/lib/migrations/templates";
import { evaluateProgram } from "../tools/evaluate";
import { EngineDeployer, EngineRun, engineLane, newPassphrase } from "./engine";
import { ApplyingMocks } from "./applier";
import { watchResources } from "./mocks";
import { TenantSpec, writeTenantFiles as writeSpecFiles } from "./tenantFiles";

/**
 * The integration harness: one real cluster per tier on free ports in a temporary folder, the
 * rendered pg_hba.conf in place (scram-sha-256, an explicit reject; never trust), and the real
 * program (infra/) run under mocks that apply every resource to those clusters.
 */

export const FLEET_STACK = "integration";
export const PROVISIONER = "pgtenants_provisioner";
export const TEMPLATE = "customer_template_v1";
const TEMPLATE_FAMILY = "customer_template";
const TEMPLATE_SQL = path.join(__dirname, "..", FIRST_TEMPLATE_SQL);

/** Fleet tenants are active unless their spec says otherwise. */
export type FleetTenant = TenantSpec;

/** Makes the fleet's tenants folder hold exactly these tenants, active unless a spec says otherwise. */
export function writeTenantFiles(dir: string, tenants: readonly FleetTenant[]): void {
  writeSpecFiles(
    dir,
    tenants.map((t) => ({ ...t, state: t.state ?? "active" })),
  );
}

export interface FleetOptions {
  tiers: string[];
  /** Tenants to write as files, or a folder of tenant files to use as it is. */
  tenants: FleetTenant[] | string;
  pgVersion?: 15 | 17;
  /**
   * Who applies the program: the SQL applier under the mock runtime (the fast lane, default),
   * or the real Pulumi engine and provider plugins (the engine lane; needs an engine).
   */
  deploy?: "applier" | "engine";
  /** Deploy once before returning (default); false leaves the stack empty for a first preview. */
  deployNow?: boolean;
  /** Server settings of every cluster (the stack's `server`), over the stack config's defaults. */
  server?: Partial<ServerConfig>;
  /** More settings of a tier's cluster in the stack config (e.g. its `pooler`). */
  cluster?: (tier: string) => Record<string, unknown>;
}

export interface ResolvedOutputs {
  tenants: Record<string, TenantSummary>;
  credentials: Record<string, { rw: Credentials; ro: Credentials; dataKey: string }>;
  pgHba: Record<string, string>;
  /** Clusters with a pooler: its configuration, and its auth file (a secret output). */
  pooler?: Record<string, PoolerOutput>;
  poolerAuth?: Record<string, string>;
}

export interface ApplyResult {
  outputs: ResolvedOutputs;
  /** The statements this run issued (the applier's; empty under the engine, which is not watched). */
  statements: string[];
  /** Under the engine: what it reported for the run. */
  run?: EngineRun;
}

export interface Fleet {
  root: string;
  /** The tenants folder the program reads. */
  tenantsDir: string;
  clusters: Record<string, RunningCluster>;
  /** The raw stack config of the run (keys without namespace), passwords included. */
  config: Record<string, unknown>;
  stackConfig: StackConfig;
  outputs: ResolvedOutputs;
  /** Every statement the applier issued so far, in order. */
  statements: string[];
  applier: ApplyingMocks;
  /** The real engine's stack of this fleet (deploy: "engine" only). */
  engine?: EngineDeployer;
  /** Runs the program again (optionally over another manifest) and writes the new pg_hba files. */
  apply(tenants?: FleetTenant[]): Promise<ApplyResult>;
  stop(): Promise<void>;
}

/** A port the OS says is free right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const secret = () => randomBytes(18).toString("base64url");

export async function provisionFleet(opts: FleetOptions): Promise<Fleet> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-fleet-"));
  // The root reads like a checkout: the commands find the template's migrations under it.
  fs.cpSync(path.join(__dirname, "..", MIGRATIONS_DIR), path.join(root, MIGRATIONS_DIR), {
    recursive: true,
  });
  // The server runs as the OS user postgres under root: it must reach the data folders.
  fs.chmodSync(root, 0o755);
  const tenantsDir = typeof opts.tenants === "string" ? opts.tenants : path.join(root, "tenants");
  if (typeof opts.tenants !== "string") writeTenantFiles(tenantsDir, opts.tenants);

  const clusters: Record<string, RunningCluster> = {};
  const passwords: Record<string, string> = {};
  const clusterConfig: Record<string, unknown> = {};
  try {
    for (const tier of opts.tiers) {
      const port = await freePort();
      passwords[tier] = secret();
      clusters[tier] = await startCluster({
        tier,
        port,
        dataDir: path.join(root, tier),
        superuserPassword: secret(),
        provisioner: { name: PROVISIONER, password: passwords[tier] },
        template: { name: TEMPLATE, sqlFile: TEMPLATE_SQL },
        pgVersion: opts.pgVersion,
        server: { ...DEFAULT_SERVER_CONFIG, ...opts.server },
      });
      clusterConfig[tier] = {
        host: clusters[tier].host,
        port,
        username: PROVISIONER,
        sslmode: "disable",
        maxConnections: 4,
        connectionLimit: 20,
        statementTimeoutMs: 30000,
        ...(opts.server !== undefined ? { server: opts.server } : {}),
        ...opts.cluster?.(tier),
      };
    }
  } catch (err) {
    await Promise.all(Object.values(clusters).map((c) => c.stop()));
    fs.rmSync(root, { recursive: true, force: true });
    throw err;
  }

  const config: Record<string, unknown> = {
    namePrefix: "tenant_",
    template: TEMPLATE,
    appSchemas: ["app"],
    tenantsDir,
    clusters: clusterConfig,
    keys: { provider: "local" },
    hba: {
      connectionType: "host",
      clientCidrs: ["127.0.0.1/32"],
      adminCidrs: ["127.0.0.1/32"],
      adminUsers: ["postgres"],
    },
    clusterPasswords: passwords,
  };
  const plain = Object.fromEntries(
    Object.entries(config).filter(([k]) => k !== "clusterPasswords"),
  );
  const stackConfig = parseStackConfig(FLEET_STACK, plain);

  // Before the first run each cluster admits only its administrators, as rendered for no tenant.
  for (const [tier, cluster] of Object.entries(clusters)) {
    await cluster.writeHba(renderHba(tier, PROVISIONER, stackConfig.hba, []));
    // The drift check's reference of the first template, as a migrate run records it.
    await recordReferences(
      {
        tier,
        host: cluster.host,
        port: cluster.port,
        user: PROVISIONER,
        password: passwords[tier],
        sslmode: "disable",
        connectTimeout: 10,
        database: "postgres",
      },
      TEMPLATE_FAMILY,
      1,
    );
  }

  const applier = new ApplyingMocks();
  const engine =
    opts.deploy === "engine"
      ? new EngineDeployer(requireEngine(), {
          dir: root,
          stack: FLEET_STACK,
          config: plain,
          secrets: { clusterPasswords: passwords },
          passphrase: newPassphrase(),
        })
      : undefined;
  const installHba = async (outputs: ResolvedOutputs) => {
    for (const [tier, text] of Object.entries(outputs.pgHba)) await clusters[tier].writeHba(text);
    fleet.outputs = outputs;
  };
  const fleet: Fleet = {
    root,
    tenantsDir,
    clusters,
    config,
    stackConfig,
    outputs: { tenants: {}, credentials: {}, pgHba: {} },
    statements: applier.statements,
    applier,
    engine,
    async apply(tenants?: FleetTenant[]): Promise<ApplyResult> {
      if (tenants !== undefined) writeTenantFiles(tenantsDir, tenants);
      if (engine !== undefined) {
        const run = await engine.up();
        const outputs = (await engine.outputs()) as unknown as ResolvedOutputs;
        await installHba(outputs);
        return { outputs, statements: [], run };
      }
      const first = applier.statements.length;
      try {
        const raw = await evaluateProgram({
          stack: FLEET_STACK,
          config,
          mocks: applier,
          beforeRun: () =>
            watchResources(({ name, opts }) => {
              if (opts.ignoreChanges !== undefined)
                applier.ignoreChanges.set(name, opts.ignoreChanges);
            }),
        });
        await applier.finishRun();
        const outputs = await resolveOutputs(raw);
        await installHba(outputs);
        return { outputs, statements: applier.statements.slice(first) };
      } finally {
        await applier.close();
      }
    },
    async stop(): Promise<void> {
      await applier.close();
      await Promise.all(Object.values(clusters).map((c) => c.stop()));
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    if (opts.deployNow ?? true) await fleet.apply();
  } catch (err) {
    await fleet.stop();
    throw err;
  }
  return fleet;
}

/** The engine the engine lane runs; a fleet asks for one only when it deploys through it. */
function requireEngine() {
  const lane = engineLane();
  if (lane.engine === undefined) throw new Error(lane.reason);
  return lane.engine;
}

function settle<T>(value: pulumi.Input<T> | undefined): Promise<T | undefined> {
  if (value === undefined) return Promise.resolve(undefined);
  return new Promise((resolve) =>
    pulumi.output(value).apply((v) => {
      resolve(v as T);
      return v;
    }),
  );
}

async function resolveOutputs(raw: FleetOutputs): Promise<ResolvedOutputs> {
  const credentials = (await settle(raw.credentials)) ?? {};
  const poolerAuth = await settle(raw.poolerAuth);
  return {
    tenants: raw.tenants,
    credentials: credentials as ResolvedOutputs["credentials"],
    pgHba: raw.pgHba,
    ...(raw.pooler !== undefined ? { pooler: raw.pooler } : {}),
    ...(poolerAuth !== undefined ? { poolerAuth } : {}),
  };
}

/** A connected client logged in with a tenant login's credentials (optionally to another database). */
export async function connectAs(credentials: Credentials, database?: string): Promise<Client> {
  const client = new Client({
    host: credentials.host,
    port: credentials.port,
    user: credentials.user,
    password: credentials.password,
    database: database ?? credentials.database,
  });
  await client.connect();
  return client;
}
