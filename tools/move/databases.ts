import type { Client } from "pg";
import type { TenantModel } from "../../infra/model";
import { CommandError } from "../lib/cli";
import { databaseContents } from "../lib/contents";
import { ClusterTarget, connect, describeHolders, lockHolders } from "../lib/pg";

/**
 * The databases a move works on, for every phase: the source cluster's connection, a connection
 * to a database of either cluster, whether a database holds data, who blocks it, and the roles
 * a tenant's large objects may belong to.
 */

export interface Side {
  target: ClusterTarget;
  admin: Client;
}

export async function openSide(target: ClusterTarget): Promise<Side> {
  return { target, admin: await connect(target) };
}

/** Runs `fn` with a connection to a database of a cluster; the database must exist. */
export async function withDatabase<T>(
  target: ClusterTarget,
  database: string,
  fn: (c: Client) => Promise<T>,
  hint?: string,
): Promise<T> {
  const admin = await connect(target);
  try {
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    if (exists.rowCount === 0) {
      throw new CommandError(
        `database ${database} does not exist on cluster "${target.tier}"${hint ? `: ${hint}` : ""}`,
      );
    }
  } finally {
    await admin.end().catch(() => undefined);
  }
  const c = await connect(target, database);
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

export const hasData = (c: Awaited<ReturnType<typeof databaseContents>>) =>
  c.tables.some((t) => t.rows > 0) || c.largeObjects.count > 0;

/** Who holds the locks a copy waited for, on the target database. */
export async function blockers(
  dest: ClusterTarget,
  database: string,
  tenantOf: (role: string) => string | undefined,
): Promise<string> {
  try {
    return await withDatabase(dest, database, async (c) =>
      describeHolders(await lockHolders(c, database), tenantOf),
    );
  } catch {
    return "the blocking session could not be read; look in pg_locks on the target cluster";
  }
}

/** The roles a tenant's large objects may belong to. */
export function tenantRoles(model: TenantModel): string[] {
  return model.roles.map((r) => r.name);
}
