import type { Client } from "pg";
import type { TenantModel } from "../../infra/model";
import { isLoginKind } from "../../infra/naming";
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
  const logins = model.roles.filter((r) => isLoginKind(r.kind)).map((r) => r.name);
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
  const logins = model.roles.filter((r) => isLoginKind(r.kind)).map((r) => r.name);
  const current = await admin.query<{ rolname: string; rolcanlogin: boolean }>(
    "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY($1::text[])",
    [logins],
  );
  // In the model's order (rw, then ro), whatever order the catalog returns.
  const frozen: Frozen = {
    logins: logins.filter((l) => current.rows.some((r) => r.rolname === l && r.rolcanlogin)),
  };
  // Only the roles actually set NOLOGIN are given LOGIN back when the freeze is undone.
  const done: Frozen = { logins: [] };
  let failed: string | undefined;
  try {
    for (const role of frozen.logins) {
      try {
        await admin.query(`ALTER ROLE ${quoteIdent(role)} NOLOGIN`);
      } catch (e) {
        failed = `freezing the source failed: ALTER ROLE ${quoteIdent(role)} NOLOGIN: ${(e as Error).message}`;
        throw e;
      }
      done.logins.push(role);
    }
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
    try {
      await thaw(admin, done);
    } catch (t) {
      throw new CommandError(`${failed ?? (e as Error).message}\n${(t as Error).message}`);
    }
    if (failed !== undefined) {
      throw new CommandError(
        `${failed}; ${done.logins.length > 0 ? `${done.logins.join(", ")} got LOGIN back, ` : ""}the source serves as before`,
      );
    }
    throw e;
  }
  return frozen;
}

/**
 * Gives the logins back what freeze took. Tries every role; if any fails, throws one message
 * naming the roles left NOLOGIN and the statements that restore them.
 */
export async function thaw(admin: Client, frozen: Frozen): Promise<void> {
  const failed: string[] = [];
  let cause = "";
  for (const role of frozen.logins) {
    try {
      await admin.query(`ALTER ROLE ${quoteIdent(role)} LOGIN`);
    } catch (e) {
      failed.push(role);
      cause ||= (e as Error).message;
    }
  }
  if (failed.length > 0) {
    throw new CommandError(
      `giving LOGIN back failed (${cause}): ${failed.join(", ")} cannot log in; as the provisioning role run: ${failed.map((r) => `ALTER ROLE ${quoteIdent(r)} LOGIN`).join("; ")}`,
    );
  }
}
