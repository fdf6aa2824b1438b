import * as path from "path";
import { buildFleetModel, TenantModel } from "../infra/model";
import { tenantsOfShard } from "../infra/shards";
import {
  CommandError,
  CommandIo,
  EXIT,
  loadContext,
  readCommandArgs,
  processIo,
  runCommand,
  StackContext,
  UsageError,
} from "./lib/cli";
import { clusterTarget, ClusterTarget } from "./lib/pg";
import { loadMigrations, MIGRATIONS_DIR, stackTemplate } from "./lib/migrations/files";
import { checkFleet, migrateFleet, TenantTarget, tenantTarget } from "./lib/migrations/fleet";
import {
  counts,
  MIGRATE_FORMATS,
  MigrateFormat,
  renderCheck,
  renderRun,
  resultLine,
} from "./lib/migrations/report";
import { DEFAULT_LIMITS } from "./lib/migrations/runner";

/**
 * `pg-tenants migrate --stack <name>` (`npm run migrate -- ...`): brings every tenant database of the stack to the version its
 * `pg-tenants:template` names (`customer_template_v<N>`: migrations 0001..N of
 * templates/customer/migrations), after building the template versions that are missing.
 * Canary first, then waves; one transaction per migration, run as the tenant's owner role.
 * `--dry-run` prints the plan, `--check` compares each tenant's schema with its template's.
 * Exit 0 when every tenant is at the version (skipped ones aside) or, with --check, clean;
 * 1 when any failed, was refused, was not run or drifted; 2 on bad usage.
 */

/** A whole number in [min, max] from an option, or a usage error naming it. */
function whole(value: string, name: string, min: number, max: number, usage: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}\nusage: ${usage}`);
  }
  return n;
}

/** The tenants a run acts on, each with why it is left alone, if it is. */
export function tenantTargets(ctx: StackContext, only: readonly string[]): TenantTarget[] {
  const fleet = buildFleetModel(tenantsOfShard(ctx.cfg, ctx.tenants), ctx.cfg);
  const known = new Set(fleet.tenants.map((m) => m.id));
  for (const id of only) {
    if (!known.has(id)) {
      throw new CommandError(
        `unknown tenant ${JSON.stringify(id)}: stack ${ctx.cfg.stack}'s shard has no tenant file ${path.join(ctx.cfg.tenantsDir, `${id}.yaml`)}`,
      );
    }
  }
  const chosen = only.length > 0 ? fleet.tenants.filter((m) => only.includes(m.id)) : fleet.tenants;
  return chosen.map((m) => ({ ...tenantTarget(m), ...skipReason(m, only.includes(m.id)) }));
}

/**
 * Offboarded tenants keep their database as it was (the final dump is its last word); a tenant
 * with a declared move is copied at the source's version, so it is migrated only when named.
 */
function skipReason(m: TenantModel, named: boolean): { skip?: string } {
  if (!m.database.open) return { skip: "offboarded: its database stays as it was offboarded" };
  if (m.move !== undefined && !named) {
    return {
      skip: `a move to ${m.move.to} is declared: the move copies it at its own version; name it (--tenant ${m.id}) to migrate it before the move, or migrate after it`,
    };
  }
  return {};
}

export async function main(argv: string[], io: CommandIo = processIo()): Promise<number> {
  return runCommand(io, async () => {
    const args = readCommandArgs(argv, "migrate");
    const usage = args.usage;
    const format = args.value("format") as MigrateFormat;
    if (!MIGRATE_FORMATS.includes(format)) {
      throw new UsageError(
        `--format must be one of ${MIGRATE_FORMATS.join(", ")}\nusage: ${usage}`,
      );
    }
    const modes = ["dry-run", "check", "templates"].filter((k) => args.flag(k));
    if (modes.length > 1) {
      throw new UsageError(`--${modes.join(" and --")} do not go together\nusage: ${usage}`);
    }
    const canaryText = args.value("canary");
    const canary: string[] | number = /^\d+$/.test(canaryText)
      ? whole(canaryText, "canary", 0, 100_000, usage)
      : canaryText.split(",").map((s) => s.trim());
    const waveSize = whole(args.value("wave-size"), "wave-size", 0, 100_000, usage);
    const parallel = whole(args.value("parallel"), "parallel", 1, 64, usage);
    const lockTimeoutMs = whole(args.value("lock-timeout"), "lock-timeout", 1, 3_600_000, usage);
    const only = args.list("tenant");
    const dryRun = args.flag("dry-run");

    const ctx = loadContext(args.value("stack"), io.root);
    const migrations = loadMigrations(path.join(io.root, MIGRATIONS_DIR));
    const { family, version } = stackTemplate(ctx.cfg.template, ctx.cfg.stack, migrations);
    const tenants = tenantTargets(ctx, only);
    if (Array.isArray(canary)) {
      const unknown = canary.filter((id) => !tenants.some((t) => t.id === id));
      if (unknown.length > 0) {
        throw new CommandError(
          `--canary names ${unknown.join(", ")}, not among the tenants of this run (${tenants.map((t) => t.id).join(", ") || "none"})`,
        );
      }
    }
    const tiers = Object.keys(ctx.cfg.clusters);
    const targets: Record<string, ClusterTarget> = Object.fromEntries(
      tiers.map((tier) => [tier, clusterTarget(ctx.cfg, tier, ctx.root, io.env)]),
    );
    const provisioner = Object.fromEntries(
      tiers.map((tier) => [tier, ctx.cfg.clusters[tier].username]),
    );
    const limits = { ...DEFAULT_LIMITS, lockTimeoutMs };
    const step = (io as CommandIo & { progress?: (message: string) => void }).progress;

    if (args.flag("check")) {
      let done = 0;
      const active = tenants.filter((t) => t.skip === undefined).length;
      const { results, ms } = await checkFleet(targets, tenants, {
        migrations,
        family,
        version,
        provisioner,
        limits,
        parallel,
        onResult: (r) => {
          if (r.outcome.status !== "skipped") done++;
          step?.(`drift check: ${done}/${active} tenant(s); ${r.tenant.id}: ${r.outcome.status}`);
        },
      });
      io.out(renderCheck(ctx.cfg.stack, ctx.cfg.template, version, results, ms, format));
      const bad = results.filter((r) => !["clean", "skipped"].includes(r.outcome.status));
      return bad.length === 0 ? EXIT.ok : EXIT.failed;
    }

    let done = 0;
    const report = await migrateFleet(targets, args.flag("templates") ? [] : tenants, {
      migrations,
      family,
      version,
      provisioner,
      searchPath: ctx.cfg.appSchemas,
      limits,
      parallel,
      canary,
      waveSize,
      continueOnError: args.flag("continue-on-error"),
      dryRun,
      verify: args.flag("verify"),
      onStep: (message) => step?.(message),
      onResult: (r) => {
        done++;
        step?.(`[${done}/${tenants.length}] ${resultLine(r)}`);
      },
    });
    io.out(
      renderRun(
        {
          stack: ctx.cfg.stack,
          template: ctx.cfg.template,
          version,
          dryRun,
          report,
        },
        format,
      ),
    );
    const c = counts(report.results);
    return (c.failed ?? 0) + (c.refused ?? 0) + (c["not-run"] ?? 0) === 0 ? EXIT.ok : EXIT.failed;
  });
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}

/**
 * Builds the template versions the stack names and lacks, on every cluster (what `pulumi up`
 * needs before it clones a new tenant from the stack's template); returns what was done.
 */
export async function ensureTemplates(ctx: StackContext, io: CommandIo): Promise<string[]> {
  const migrations = loadMigrations(path.join(io.root, MIGRATIONS_DIR));
  const { family, version } = stackTemplate(ctx.cfg.template, ctx.cfg.stack, migrations);
  const tiers = Object.keys(ctx.cfg.clusters);
  const report = await migrateFleet(
    Object.fromEntries(tiers.map((tier) => [tier, clusterTarget(ctx.cfg, tier, ctx.root, io.env)])),
    [],
    {
      migrations,
      family,
      version,
      provisioner: Object.fromEntries(tiers.map((tier) => [tier, ctx.cfg.clusters[tier].username])),
      searchPath: ctx.cfg.appSchemas,
      limits: DEFAULT_LIMITS,
      parallel: 1,
      canary: 0,
      waveSize: 0,
      continueOnError: false,
      dryRun: false,
      verify: false,
    },
  );
  return Object.entries(report.templates).flatMap(([tier, list]) =>
    list
      .filter((b) => b.built)
      .map((b) => `cluster ${tier}: template ${b.template} built in ${b.ms} ms`),
  );
}
