import { performance } from "perf_hooks";
import { buildFleetModel, tenantsOnTier } from "../../infra/model";
import {
  CommandIo,
  EXIT,
  loadContext,
  readCommandArgs,
  processIo,
  runCommand,
  CommandError,
  StackContext,
  UsageError,
} from "../lib/cli";
import * as path from "path";
import {
  CredentialsOutput,
  CredentialsProvider,
  LocalOutputsCredentials,
} from "../../client/credentials";
import { readInputFile } from "../../infra/files";
import { clusterTarget, mapPool } from "../lib/pg";
import { snapshotCluster } from "./catalog";
import { auditContainment } from "./containmentCatalog";
import { auditFleet } from "./fleet";
import { migrationFindings } from "./migrations";
import { AUDIT_FORMATS, AuditFormat, AuditReport, renderReport, summarize } from "./report";

/**
 * `npm run audit -- --stack <name> [--format text|json|markdown] [--pool <n>] [--credentials
 * <file>]`: reads the live
 * clusters of a stack as their provisioning roles (read-only transactions only) and checks every
 * invariant of the isolation model per tenant and per cluster. Exit 0 when every invariant
 * holds, 1 on any violation (or when a cluster cannot be read), 2 on bad usage.
 */

// The audit's findings and report, for the tests that read them.
export { INVARIANTS } from "./invariants";
export type { Finding, Invariant, Severity } from "./invariants";
export { CONTAINMENT_INVARIANTS } from "./containment";
export type { AuditReport } from "./report";

export interface AuditOptions {
  /** Connections per cluster for the per-database checks. */
  poolSize: number;
  /** Where the logins' credentials are: each active login then authenticates with its own. */
  credentials?: CredentialsProvider;
}

/** Audits every cluster of a stack; clusters are read in parallel, tenant databases on a pool. */
export async function auditStack(
  ctx: StackContext,
  io: CommandIo,
  options: AuditOptions,
): Promise<AuditReport> {
  const started = performance.now();
  const fleet = buildFleetModel(ctx.tenants, ctx.cfg);
  const tiers = Object.keys(ctx.cfg.clusters);
  let read = 0;
  io.progress?.(`audit: reading ${tiers.length} cluster(s) of stack ${ctx.cfg.stack}`);
  const snapshots = await mapPool(tiers, tiers.length, async (tier) => {
    const databases = tenantsOnTier(fleet, tier).map((m) => m.database.name);
    const snapshot = await snapshotCluster(
      clusterTarget(ctx.cfg, tier, ctx.root, io.env),
      databases,
      ctx.cfg.appSchemas,
      options.poolSize,
    );
    read++;
    io.progress?.(
      `audit: cluster ${tier} read (${databases.length} tenant database(s)), ${read}/${tiers.length}`,
    );
    return snapshot;
  });
  const findings = [
    ...auditFleet(ctx.cfg, fleet, snapshots),
    ...(await auditContainment(ctx, io, options.poolSize, options.credentials)),
    ...(await migrationFindings(ctx, io, options.poolSize)),
  ];
  return summarize(
    ctx.cfg.stack,
    ctx.tenants.length,
    tiers,
    findings,
    Math.round(performance.now() - started),
  );
}

export async function main(argv: string[], io: CommandIo = processIo()): Promise<number> {
  return runCommand(io, async () => {
    const args = readCommandArgs(argv, "audit");
    const format = args.value("format") as AuditFormat;
    if (!AUDIT_FORMATS.includes(format)) {
      throw new UsageError(
        `--format must be one of ${AUDIT_FORMATS.join(", ")}\nusage: ${args.usage}`,
      );
    }
    const poolSize = Number(args.value("pool"));
    if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 64) {
      throw new UsageError(`--pool must be a whole number from 1 to 64\nusage: ${args.usage}`);
    }
    const file = args.text("credentials");
    const credentials =
      file === undefined ? undefined : credentialsFile(path.resolve(io.root, file));
    const ctx = loadContext(args.value("stack"), io.root);
    const report = await auditStack(ctx, io, { poolSize, credentials });
    io.out(renderReport(report, format));
    return report.violations === 0 ? EXIT.ok : EXIT.failed;
  });
}

/**
 * The `credentials` stack output saved as JSON, read and checked once before any cluster is
 * read: an object of tenants, each with its rw and ro logins. Its values never reach a message.
 */
function credentialsFile(file: string): CredentialsProvider {
  const read = readInputFile(file);
  if ("problem" in read) throw new CommandError(`--credentials ${file} ${read.problem}`);
  let doc: unknown;
  try {
    doc = JSON.parse(read.text);
  } catch {
    throw new CommandError(
      `--credentials ${file} is not JSON: save it with pulumi stack output --json --show-secrets credentials`,
    );
  }
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isObject(doc))
    throw new CommandError(
      `--credentials ${file} must be an object of tenants (the credentials output)`,
    );
  for (const [tenant, entry] of Object.entries(doc)) {
    if (!isObject(entry) || !isObject(entry.rw) || !isObject(entry.ro))
      throw new CommandError(
        `--credentials ${file}: tenant ${JSON.stringify(tenant)} must have rw and ro logins`,
      );
  }
  return new LocalOutputsCredentials(doc as CredentialsOutput);
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
