import type { Client } from "pg";
import type { TenantModel } from "../../infra/model";
import { quoteIdent } from "../../infra/sql";
import { CommandError } from "./cli";

/**
 * Write-freezing a tenant database on its cluster, as its provisioning role: the login roles
 * become NOLOGIN (no new session), existing sessions of them are ended (or waited for), and
 * `thaw` undoes it exactly. Used by the move before copying.
 */

export interface Frozen {
  /** The login roles that were LOGIN before and must get it back on thaw. */
  logins: string[];
}

/** Sessions of the tenant's login roles on its database. */
export async function tenantSessions(admin: Client, model: TenantModel): Promise<number[]> {
  const logins = model.roles.filter((r) => r.kind === "rw" || r.kind === "ro").map((r) => r.name);
  const r = await admin.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename = ANY($2::text[]) AND pid <> pg_backend_pid()",
    [model.database.name, logins],
  );
  return r.rows.map((row) => row.pid);
}

/**
 * Freezes writes: NOLOGIN on the logins, then ends their sessions. Ending another role's
 * session needs membership of it or pg_signal_backend; without either the sessions are waited
 * for up to `waitSeconds`, and if any remains the freeze is undone and the move refused.
 */
export async function freeze(
  admin: Client,
  model: TenantModel,
  waitSeconds: number,
): Promise<Frozen> {
  const logins = model.roles.filter((r) => r.kind === "rw" || r.kind === "ro").map((r) => r.name);
  const current = await admin.query<{ rolname: string; rolcanlogin: boolean }>(
    "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY($1::text[])",
    [logins],
  );
  const frozen: Frozen = {
    logins: current.rows.filter((r) => r.rolcanlogin).map((r) => r.rolname),
  };
  for (const role of frozen.logins) await admin.query(`ALTER ROLE ${quoteIdent(role)} NOLOGIN`);
  try {
    for (const pid of await tenantSessions(admin, model)) {
      await admin.query("SELECT pg_terminate_backend($1)", [pid]).catch(() => undefined);
    }
    const deadline = Date.now() + waitSeconds * 1000;
    let remaining = await tenantSessions(admin, model);
    while (remaining.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      remaining = await tenantSessions(admin, model);
    }
    if (remaining.length > 0) {
      throw new CommandError(
        `${remaining.length} session(s) of ${logins.join("/")} are still connected to ${model.database.name} after ${waitSeconds}s and could not be ended (the provisioning role needs pg_signal_backend for that): stop the application's connections to tenant ${model.id}, or grant pg_signal_backend to the provisioning role, and run the move again`,
      );
    }
  } catch (e) {
    await thaw(admin, frozen);
    throw e;
  }
  return frozen;
}

/** Gives the logins back what freeze took. */
export async function thaw(admin: Client, frozen: Frozen): Promise<void> {
  for (const role of frozen.logins) await admin.query(`ALTER ROLE ${quoteIdent(role)} LOGIN`);
}
