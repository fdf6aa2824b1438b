import { ADVISORY_LOCK_CAP } from "../infra/containment";
import { buildFleetModel, TenantModel, tenantsOnTier } from "../infra/model";
import {
  CommandIo,
  EXIT,
  loadContext,
  processIo,
  readCommandArgs,
  runCommand,
  StackContext,
  UsageError,
} from "./lib/cli";
import { clusterTarget, connect } from "./lib/pg";

/**
 * `pg-tenants watchdog --stack <name> [--once] [--interval <seconds>] [--dry-run]`: enforces the
 * session limits PostgreSQL leaves to each session (docs/containment.md). A tenant login may
 * `SET statement_timeout = 0` or lift its idle timeouts for itself; the watchdog, as the
 * provisioning role (pg_signal_backend), ends the tenant sessions that run a statement longer
 * than their login's statement timeout, sit idle in a transaction or idle longer than the
 * cluster's limits, belong to an offboarded tenant, or hold more advisory locks than a session
 * may. Each ended session is printed with its tenant and the reason. Exit 0; 1 when a cluster
 * cannot be read or a session could not be ended.
 */

/** Grace over a limit before a session is ended: the server's own timeout acts first. */
const GRACE_MS = 1000;

export interface Overrun {
  tier: string;
  tenant: string;
  pid: number;
  login: string;
  reason: string;
}

interface SessionRow {
  pid: number;
  login: string;
  state: string | null;
  running_ms: number | null;
  in_state_ms: number | null;
  advisory_locks: number;
}

const SESSIONS_SQL = `
SELECT a.pid, a.usename AS login, a.state,
       (extract(epoch FROM now() - a.query_start) * 1000)::bigint AS running_ms,
       (extract(epoch FROM now() - a.state_change) * 1000)::bigint AS in_state_ms,
       (SELECT count(*) FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory')::int AS advisory_locks
FROM pg_stat_activity a
WHERE a.usename = ANY($1::text[]) AND a.pid <> pg_backend_pid()`;

/** Why a session of this tenant login is over its limits, or undefined when it is not. */
export function overrun(
  model: TenantModel,
  row: SessionRow,
  limits: { idleSessionMs: number; idleInTransactionMs: number },
): string | undefined {
  const spec = model.roles.find((r) => r.name === row.login);
  if (spec === undefined) return undefined;
  if (!model.database.open) return `tenant ${model.id} is offboarded`;
  if (row.advisory_locks > ADVISORY_LOCK_CAP) {
    return `it holds ${row.advisory_locks} advisory locks, over the ${ADVISORY_LOCK_CAP} a session may`;
  }
  const over = (ms: number | null, limit: number) => limit > 0 && (ms ?? 0) > limit + GRACE_MS;
  const timeout = spec.statementTimeoutMs ?? 0;
  if (row.state === "active" && over(row.running_ms, timeout)) {
    return `its statement has run ${Math.round((row.running_ms ?? 0) / 1000)} s, over its login's statement timeout of ${timeout / 1000} s`;
  }
  if (
    row.state?.startsWith("idle in transaction") &&
    over(row.in_state_ms, limits.idleInTransactionMs)
  ) {
    return `it has been idle in a transaction ${Math.round((row.in_state_ms ?? 0) / 1000)} s, over the cluster's ${limits.idleInTransactionMs / 1000} s`;
  }
  if (row.state === "idle" && over(row.in_state_ms, limits.idleSessionMs)) {
    return `it has been idle ${Math.round((row.in_state_ms ?? 0) / 1000)} s, over the cluster's ${limits.idleSessionMs / 1000} s`;
  }
  return undefined;
}

/** One pass over every cluster of the stack: ends (or, dry, lists) the sessions over their limits. */
export async function watchOnce(
  ctx: StackContext,
  io: CommandIo,
  opts: { dryRun: boolean },
): Promise<{ ended: Overrun[]; failed: string[] }> {
  const fleet = buildFleetModel(ctx.tenants, ctx.cfg);
  const ended: Overrun[] = [];
  const failed: string[] = [];
  for (const [tier, cluster] of Object.entries(ctx.cfg.clusters)) {
    const models = tenantsOnTier(fleet, tier);
    const byLogin = new Map<string, TenantModel>();
    for (const m of models) {
      for (const r of m.roles) if (r.kind === "rw" || r.kind === "ro") byLogin.set(r.name, m);
    }
    const limits = {
      idleSessionMs: cluster.server.idleSessionTimeoutMs,
      idleInTransactionMs: cluster.server.idleInTransactionSessionTimeoutMs,
    };
    let client;
    try {
      client = await connect(clusterTarget(ctx.cfg, tier, ctx.root, io.env));
    } catch (err) {
      failed.push(`cluster ${tier}: ${(err as Error).message}`);
      continue;
    }
    try {
      const rows = await client.query<SessionRow>(SESSIONS_SQL, [[...byLogin.keys()]]);
      for (const row of rows.rows) {
        const model = byLogin.get(row.login)!;
        const reason = overrun(model, row, limits);
        if (reason === undefined) continue;
        const found: Overrun = { tier, tenant: model.id, pid: row.pid, login: row.login, reason };
        if (!opts.dryRun) {
          const r = await client.query<{ ok: boolean }>("SELECT pg_terminate_backend($1) AS ok", [
            row.pid,
          ]);
          if (r.rows[0]?.ok !== true) {
            failed.push(`pid ${row.pid} of ${row.login} on cluster ${tier} could not be ended`);
            continue;
          }
        }
        ended.push(found);
        io.out(
          `${opts.dryRun ? "would end" : "ended"} pid ${row.pid} of ${row.login} (tenant ${model.id}, cluster ${tier}): ${reason}`,
        );
      }
    } catch (err) {
      const code = (err as { code?: string }).code;
      failed.push(
        code === "42501"
          ? `cluster ${tier}: the provisioning role may not end tenant sessions (GRANT pg_signal_backend TO ${cluster.username})`
          : `cluster ${tier}: ${(err as Error).message}`,
      );
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return { ended, failed };
}

export async function main(argv: string[], io: CommandIo = processIo()): Promise<number> {
  return runCommand(io, async () => {
    const args = readCommandArgs(argv, "watchdog");
    const interval = Number(args.value("interval"));
    if (!Number.isFinite(interval) || interval < 1 || interval > 3600) {
      throw new UsageError(`--interval must be from 1 to 3600 seconds\nusage: ${args.usage}`);
    }
    const once = args.flag("once");
    const dryRun = args.flag("dry-run");
    const ctx = loadContext(args.value("stack"), io.root);
    for (;;) {
      const { failed } = await watchOnce(ctx, io, { dryRun });
      for (const f of failed) io.err(`error: ${f}`);
      if (once) return failed.length === 0 ? EXIT.ok : EXIT.failed;
      await new Promise((r) => setTimeout(r, interval * 1000));
    }
  });
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
