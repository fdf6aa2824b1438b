import type { Client } from "pg";
import type { TenantModel } from "../../../infra/model";
import { connect, ClusterTarget, mapPool } from "../pg";
import { digestOf, Migration, templateName } from "./files";
import { describeDifference, diffSchemas, normalize, readSnapshot, Schema } from "./drift";
import { planTenant, readState } from "./history";
import {
  ensureLedger,
  ledgerCurrent,
  ledgerWrite,
  readTemplateSnapshot,
  runLockHolder,
  tryRunLock,
} from "./ledger";
import { applyPending, baseline, prepareSession, SessionLimits } from "./runner";
import { buildTemplates, TemplateBuild, templateSnapshot } from "./templates";
import { CommandError } from "../cli";

/**
 * A fleet run: per cluster, the run lock and the ledger first (tenants it proves current are not
 * opened), the missing template versions built, then the canary tenants, then waves of the
 * rest; in a wave, at most `parallel` tenants at once per cluster, clusters side by side. The
 * first failure stops the run: tenants already started finish, none is started after it
 * (unless `continueOnError`). Every tenant ends at a version, migrated whole or untouched; a
 * run that dies is resumed by running it again.
 */

/** One tenant database as a run sees it. */
export interface TenantTarget {
  id: string;
  tier: string;
  database: string;
  /** The role migrations run as (the tenant's owner). */
  owner: string;
  /** The tenant's role names and what they are (RW, RO, GROUP), to compare snapshots. */
  roles: Record<string, string>;
  /** Extensions the program creates in every tenant database (not the template's). */
  extensions: string[];
  /** Why this tenant is left alone (offboarded, a move declared), if it is. */
  skip?: string;
}

/** A tenant of the model as a run sees it (its skip reason, if any, is the caller's). */
export function tenantTarget(m: TenantModel): TenantTarget {
  return {
    id: m.id,
    tier: m.tier,
    database: m.database.name,
    owner: m.names.owner,
    roles: {
      [m.names.owner]: "OWNER",
      [m.names.rw]: "RW",
      [m.names.ro]: "RO",
      [m.names.group]: "GROUP",
    },
    extensions: m.extensions,
  };
}

export type Outcome =
  | { status: "skipped"; reason: string }
  | { status: "current"; version: number; via: "ledger" | "history" | "baseline" }
  | { status: "pending"; version: number; pending: string[] }
  | { status: "migrated"; from: number; version: number; applied: string[]; ms: number }
  | {
      status: "failed";
      version: number;
      migration?: string;
      code?: string;
      message: string;
    }
  | { status: "refused"; version?: number; problems: string[] }
  | { status: "not-run"; reason: string };

export interface TenantResult {
  tenant: TenantTarget;
  /** Canary, or the wave's number (1-based). */
  wave: "canary" | number | "-";
  outcome: Outcome;
}

export interface RunOptions {
  migrations: readonly Migration[];
  family: string;
  /** The stack's template version: what every tenant is brought to. */
  version: number;
  provisioner: Record<string, string>;
  searchPath: readonly string[];
  limits: SessionLimits;
  /** Per cluster, tenants at once. */
  parallel: number;
  /** Tenant ids that go first, alone in their wave, or a count taken from the front. */
  canary: string[] | number;
  /** Tenants per wave after the canary (all at once when 0). */
  waveSize: number;
  continueOnError: boolean;
  dryRun: boolean;
  /** Open every tenant database, trusting no ledger row (the ledger is rewritten). */
  verify: boolean;
  onResult?: (r: TenantResult) => void;
  onStep?: (message: string) => void;
}

export interface RunReport {
  results: TenantResult[];
  templates: Record<string, TemplateBuild[]>;
  /** The run stopped at a failure: tenants after it were not started. */
  stopped: boolean;
  ms: number;
}

interface ClusterSession {
  target: ClusterTarget;
  maint: Client;
  ledger: boolean;
  /** Ledger writes go through the one maintenance session, one after the other. */
  queue: Promise<unknown>;
}

async function openClusters(
  targets: Record<string, ClusterTarget>,
  opts: { lock: boolean; limits: SessionLimits; provisioner: Record<string, string> },
): Promise<Record<string, ClusterSession>> {
  const sessions: Record<string, ClusterSession> = {};
  try {
    for (const [tier, target] of Object.entries(targets)) {
      const maint = await connect(target);
      sessions[tier] = { target, maint, ledger: false, queue: Promise.resolve() };
      await prepareSession(maint, opts.limits);
      if (opts.lock && !(await tryRunLock(maint))) {
        throw new CommandError(
          `another migrate runs on cluster "${tier}" (${await runLockHolder(maint)}); wait for it, or stop it, then run again`,
        );
      }
      sessions[tier].ledger = await ensureLedger(maint, opts.provisioner[tier]);
    }
  } catch (e) {
    await closeClusters(sessions);
    throw e;
  }
  return sessions;
}

async function closeClusters(sessions: Record<string, ClusterSession>): Promise<void> {
  await Promise.all(
    Object.values(sessions).map(async (s) => {
      await s.queue.catch(() => undefined);
      await s.maint.end().catch(() => undefined);
    }),
  );
}

function record(
  s: ClusterSession,
  database: string,
  version: number,
  digest: string,
): Promise<void> {
  if (!s.ledger) return Promise.resolve();
  const write = s.queue.then(() => ledgerWrite(s.maint, database, version, digest));
  s.queue = write.catch(() => undefined);
  return write;
}

/** Tenants split into the canary wave and waves of `size`; the canary picked by id or count. */
export function planWaves<T extends { id: string }>(
  tenants: readonly T[],
  canary: string[] | number,
  size: number,
): { wave: "canary" | number; tenants: T[] }[] {
  const first =
    typeof canary === "number"
      ? tenants.slice(0, canary)
      : tenants.filter((t) => canary.includes(t.id));
  const rest = tenants.filter((t) => !first.includes(t));
  const waves: { wave: "canary" | number; tenants: T[] }[] = [];
  if (first.length > 0) waves.push({ wave: "canary", tenants: first });
  const step = size > 0 ? size : Math.max(1, rest.length);
  for (let i = 0; i < rest.length; i += step) {
    waves.push({
      wave: waves.length + (first.length > 0 ? 0 : 1),
      tenants: rest.slice(i, i + step),
    });
  }
  return waves;
}

/** Brings one tenant database to the target version, or says why not. */
async function migrateTenant(
  s: ClusterSession,
  t: TenantTarget,
  opts: RunOptions,
  firstTemplate: string,
): Promise<Outcome> {
  let c: Client;
  try {
    c = await connect(s.target, t.database);
  } catch (e) {
    return { status: "failed", version: 0, message: (e as Error).message };
  }
  try {
    await prepareSession(c, opts.limits);
    const state = await readState(c);
    const plan = planTenant(state, opts.migrations, opts.version, opts.provisioner[t.tier]);
    if (plan.problems.length > 0) {
      return { status: "refused", version: plan.version, problems: plan.problems };
    }
    const names = plan.pending.map((m) => m.name);
    if (opts.dryRun) {
      return names.length === 0
        ? { status: "current", version: plan.version, via: "history" }
        : { status: "pending", version: plan.version, pending: names };
    }
    if (plan.needsBaseline) {
      await baseline(c, opts.migrations, {
        template: firstTemplate,
        version: 1,
        how: "baseline: cloned before migrations were recorded",
      });
    }
    if (names.length === 0) {
      await record(s, t.database, plan.version, plan.digest);
      return {
        status: "current",
        version: plan.version,
        via: plan.needsBaseline ? "baseline" : "history",
      };
    }
    const started = Date.now();
    const result = await applyPending(c, opts.migrations, plan.pending, t.owner, opts.searchPath);
    const version = plan.version + result.applied.length;
    const digest = digestOf(opts.migrations.slice(0, version));
    await record(s, t.database, version, digest).catch(() => undefined);
    if (result.failure !== undefined) {
      return {
        status: "failed",
        version,
        migration: result.failure.migration,
        ...(result.failure.code !== undefined ? { code: result.failure.code } : {}),
        message: failureMessage(result.failure.code, result.failure.message, opts.limits),
      };
    }
    return {
      status: "migrated",
      from: plan.version,
      version,
      applied: result.applied,
      ms: Date.now() - started,
    };
  } catch (e) {
    const err = e as { code?: string; message?: string };
    return {
      status: "failed",
      version: 0,
      ...(err.code !== undefined ? { code: err.code } : {}),
      message: failureMessage(err.code, err.message ?? String(e), opts.limits),
    };
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** PostgreSQL's message, with what it means here for the failures a run expects. */
function failureMessage(code: string | undefined, message: string, limits: SessionLimits): string {
  switch (code) {
    case "55P03":
      return `${message}: a session of the tenant held a lock the migration needs for more than ${limits.lockTimeoutMs} ms; nothing of it was applied; run migrate again once that session is done`;
    case "57014":
      return `${message}: the migration ran past ${limits.statementTimeoutMs} ms and was rolled back`;
    default:
      return message;
  }
}

/** The whole run over every cluster of a stack. */
export async function migrateFleet(
  targets: Record<string, ClusterTarget>,
  tenants: readonly TenantTarget[],
  opts: RunOptions,
): Promise<RunReport> {
  const started = Date.now();
  const sessions = await openClusters(targets, {
    lock: !opts.dryRun,
    limits: opts.limits,
    provisioner: opts.provisioner,
  });
  const results: TenantResult[] = [];
  const templates: Record<string, TemplateBuild[]> = {};
  const emit = (r: TenantResult) => {
    results.push(r);
    opts.onResult?.(r);
  };
  let stopped = false;
  try {
    const firstTemplate = templateName(opts.family, 1);
    for (const [tier, s] of Object.entries(sessions)) {
      if (opts.dryRun) continue;
      opts.onStep?.(
        `cluster ${tier}: template versions up to ${templateName(opts.family, opts.version)}`,
      );
      templates[tier] = await buildTemplates(
        s.target,
        s.maint,
        opts.family,
        opts.migrations,
        opts.version,
        opts.limits,
        s.ledger,
        opts.searchPath,
      );
      // The drift check's reference of every version, recorded once (version 1 from a clone).
      if (s.ledger) {
        for (let v = 1; v <= opts.version; v++) {
          await templateSnapshot(s.target, s.maint, templateName(opts.family, v), v, true);
        }
      }
    }
    const digest = digestOf(opts.migrations.slice(0, opts.version));
    const proven = new Set<string>();
    for (const [tier, s] of Object.entries(sessions)) {
      if (!s.ledger || opts.verify) continue;
      const mine = tenants
        .filter((t) => t.tier === tier && t.skip === undefined)
        .map((t) => t.database);
      for (const d of await ledgerCurrent(s.maint, mine, opts.version, digest))
        proven.add(`${tier}/${d}`);
    }
    for (const t of tenants) {
      if (t.skip !== undefined)
        emit({ tenant: t, wave: "-", outcome: { status: "skipped", reason: t.skip } });
      else if (proven.has(`${t.tier}/${t.database}`))
        emit({
          tenant: t,
          wave: "-",
          outcome: { status: "current", version: opts.version, via: "ledger" },
        });
    }
    const todo = tenants.filter(
      (t) => t.skip === undefined && !proven.has(`${t.tier}/${t.database}`),
    );
    const waves = planWaves(todo, opts.canary, opts.waveSize);
    for (const { wave, tenants: list } of waves) {
      if (stopped) {
        for (const t of list)
          emit({
            tenant: t,
            wave,
            outcome: { status: "not-run", reason: "the run stopped at a failure before this wave" },
          });
        continue;
      }
      opts.onStep?.(`${wave === "canary" ? "canary" : `wave ${wave}`}: ${list.length} tenant(s)`);
      let failed = false;
      const byTier = new Map<string, TenantTarget[]>();
      for (const t of list) byTier.set(t.tier, [...(byTier.get(t.tier) ?? []), t]);
      await Promise.all(
        [...byTier.entries()].map(([tier, mine]) =>
          mapPool(mine, opts.parallel, async (t) => {
            if (failed && !opts.continueOnError) {
              emit({
                tenant: t,
                wave,
                outcome: { status: "not-run", reason: "the run stopped at a failure in this wave" },
              });
              return;
            }
            const outcome = await migrateTenant(sessions[tier], t, opts, firstTemplate);
            if (outcome.status === "failed" || outcome.status === "refused") failed = true;
            emit({ tenant: t, wave, outcome });
          }),
        ),
      );
      if (failed && !opts.continueOnError) stopped = true;
    }
  } finally {
    await closeClusters(sessions);
  }
  return { results: order(results, tenants), templates, stopped, ms: Date.now() - started };
}

/** Results in the manifest's order, whatever order tenants finished in. */
function order(results: TenantResult[], tenants: readonly TenantTarget[]): TenantResult[] {
  const index = new Map(tenants.map((t, i) => [`${t.tier}/${t.database}`, i]));
  return [...results].sort(
    (a, b) =>
      index.get(`${a.tenant.tier}/${a.tenant.database}`)! -
      index.get(`${b.tenant.tier}/${b.tenant.database}`)!,
  );
}

export type CheckOutcome =
  | { status: "skipped"; reason: string }
  | { status: "clean"; version: number }
  | { status: "drifted"; version: number; differences: string[] }
  | { status: "refused"; version?: number; problems: string[] }
  /** No snapshot of the tenant's version recorded (and, read-only, none made). */
  | { status: "no-reference"; version: number }
  | { status: "failed"; message: string };

export interface CheckResult {
  tenant: TenantTarget;
  outcome: CheckOutcome;
  /** Migrations the tenant lacks to reach the stack's version. */
  pending: string[];
}

/**
 * Drift: each tenant's schema against its template's at the tenant's own version (a tenant
 * behind is compared with the version it is at, and its pending migrations are listed). Reads
 * only; the ledger is rewritten with what was found.
 */
export async function checkFleet(
  targets: Record<string, ClusterTarget>,
  tenants: readonly TenantTarget[],
  opts: Pick<
    RunOptions,
    "migrations" | "family" | "version" | "provisioner" | "limits" | "parallel"
  > & {
    onResult?: (r: CheckResult) => void;
    /**
     * Write nothing (the audit): no ledger rows, and no reference made from a scratch clone
     * where none was recorded (the tenant is reported as `no-reference`).
     */
    readOnly?: boolean;
  },
): Promise<{ results: CheckResult[]; ms: number }> {
  const started = Date.now();
  const sessions = await openClusters(targets, {
    lock: false,
    limits: opts.limits,
    provisioner: opts.provisioner,
  });
  const results: CheckResult[] = [];
  const emit = (r: CheckResult) => {
    results.push(r);
    opts.onResult?.(r);
  };
  try {
    for (const t of tenants)
      if (t.skip !== undefined)
        emit({ tenant: t, outcome: { status: "skipped", reason: t.skip }, pending: [] });
    await Promise.all(
      Object.entries(sessions).map(async ([tier, s]) => {
        const references = new Map<number, Promise<Schema | undefined>>();
        const reference = (version: number) => {
          let r = references.get(version);
          if (r === undefined) {
            const name = templateName(opts.family, version);
            // One after another on the maintenance session.
            const next = s.queue.then(() =>
              opts.readOnly === true
                ? s.ledger
                  ? readTemplateSnapshot(s.maint, name).then((r) => r?.snapshot)
                  : undefined
                : templateSnapshot(s.target, s.maint, name, version, s.ledger),
            );
            s.queue = next.catch(() => undefined);
            r = next.then((raw) => (raw === undefined ? undefined : normalize(raw, {}, [])));
            references.set(version, r);
          }
          return r;
        };
        const mine = tenants.filter((t) => t.tier === tier && t.skip === undefined);
        await mapPool(mine, opts.parallel, async (t) => {
          const r = await checkTenant(s, t, opts, reference, opts.readOnly !== true);
          emit(r);
        });
      }),
    );
  } finally {
    await closeClusters(sessions);
  }
  return {
    results: results.sort((a, b) => tenants.indexOf(a.tenant) - tenants.indexOf(b.tenant)),
    ms: Date.now() - started,
  };
}

async function checkTenant(
  s: ClusterSession,
  t: TenantTarget,
  opts: Pick<RunOptions, "migrations" | "family" | "version" | "provisioner" | "limits">,
  reference: (version: number) => Promise<Schema | undefined>,
  write: boolean,
): Promise<CheckResult> {
  let c: Client;
  try {
    c = await connect(s.target, t.database);
  } catch (e) {
    return { tenant: t, outcome: { status: "failed", message: (e as Error).message }, pending: [] };
  }
  try {
    await prepareSession(c, opts.limits);
    const state = await readState(c);
    const plan = planTenant(state, opts.migrations, opts.version, opts.provisioner[t.tier]);
    const pending = plan.pending.map((m) => m.name);
    if (plan.problems.length > 0) {
      return {
        tenant: t,
        outcome: { status: "refused", version: plan.version, problems: plan.problems },
        pending,
      };
    }
    const raw = await readSnapshot(c);
    const ref = await reference(plan.version);
    if (ref === undefined) {
      return { tenant: t, outcome: { status: "no-reference", version: plan.version }, pending };
    }
    const differences = diffSchemas(
      normalizeBoth(ref, t.extensions),
      normalize(raw, t.roles, t.extensions),
    ).map(describeDifference);
    // Queued on the maintenance session; the run waits for the queue before it ends.
    if (write && state.history !== null)
      void record(s, t.database, plan.version, plan.digest).catch(() => undefined);
    return {
      tenant: t,
      outcome:
        differences.length === 0
          ? { status: "clean", version: plan.version }
          : { status: "drifted", version: plan.version, differences },
      pending,
    };
  } catch (e) {
    return { tenant: t, outcome: { status: "failed", message: (e as Error).message }, pending: [] };
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** The model's extensions are the program's, not the template's: out of both sides. */
function normalizeBoth(ref: Schema, extensions: readonly string[]): Schema {
  const out: Schema = { ...ref };
  if (out.extensions !== undefined) {
    out.extensions = Object.fromEntries(
      Object.entries(out.extensions).filter(([k]) => !extensions.includes(k)),
    );
  }
  return out;
}
