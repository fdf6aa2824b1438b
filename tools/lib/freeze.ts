import type { Client } from "pg";
import type { TenantModel } from "../../infra/model";
import { CommandError } from "./cli";

/**
 * Ending a tenant's sessions on its cluster, as the provisioning role: a move after its logins
 * are NOLOGIN, the offboarding before its final dump. Ending another role's session needs
 * pg_signal_backend (the bootstrap grants it); without it the sessions are waited for.
 */

/** The pids of sessions of the tenant's roles (`database`: on that database only). */
export async function tenantSessions(
  admin: Client,
  roles: readonly string[],
  database?: string,
): Promise<number[]> {
  const r = await admin.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity
     WHERE usename = ANY($1::text[]) AND ($2::text IS NULL OR datname = $2) AND pid <> pg_backend_pid()
     ORDER BY pid`,
    [roles, database ?? null],
  );
  return r.rows.map((row) => row.pid);
}

/**
 * Ends every session of the tenant's logins on its database and waits up to `waitSeconds` for
 * them to go. Sessions that cannot be ended (no pg_signal_backend) are waited for; if any
 * remains, throws naming them and the fix.
 */
export async function endSessions(
  admin: Client,
  model: TenantModel,
  waitSeconds: number,
): Promise<void> {
  const logins = model.roles.filter((r) => r.kind === "rw" || r.kind === "ro").map((r) => r.name);
  for (const pid of await tenantSessions(admin, logins, model.database.name)) {
    await admin.query("SELECT pg_terminate_backend($1)", [pid]).catch(() => undefined);
  }
  const deadline = Date.now() + waitSeconds * 1000;
  let remaining = await tenantSessions(admin, logins, model.database.name);
  while (remaining.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    remaining = await tenantSessions(admin, logins, model.database.name);
  }
  if (remaining.length > 0) {
    throw new CommandError(
      `${remaining.length} session(s) of ${logins.join("/")} are still connected to ${model.database.name} after ${waitSeconds}s and could not be ended (the provisioning role needs pg_signal_backend for that): stop the application's connections to tenant ${model.id}, or grant pg_signal_backend to the provisioning role, and run the move again`,
    );
  }
}
