import * as path from "path";
import type { Client } from "pg";
import type * as NodePgMigrate from "node-pg-migrate/dist/bundle/index";
import { quoteIdent } from "../../../infra/sql";
import type { Migration } from "./files";
import { HISTORY_DDL, HISTORY_SCHEMA, HISTORY_TABLE } from "./history";

/**
 * Applies migrations to one database with node-pg-migrate on a connection of ours, as the
 * provisioning role. Each file runs in the library's own transaction (`BEGIN; <file>; INSERT
 * INTO history; COMMIT`), so a database is at a version or untouched, never between. The file's
 * body runs as `role` (`SET LOCAL ROLE`): the tenant's owner, so the objects it creates are the
 * owner's and the default privileges in place give rw and ro exactly the model's rights; or
 * `pg_database_owner` in a template, so that in every clone the clone's owner owns them. The
 * history INSERT that follows in the same transaction runs as the provisioning role again.
 *
 * The library's advisory lock is off (`noLock`): a tenant login may hold any advisory key its
 * capability allows in its own database and would stall every run. UNIQUE(name) in the history
 * and the run lock in the maintenance database (ledger.ts) keep a migration from applying twice.
 */

// node-pg-migrate 9 is ES modules only; node 20.19+ loads it through require(). Its package
// exports hide the types from this project's module resolution, so they are named by path.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { runner } = require("node-pg-migrate") as typeof NodePgMigrate;
type RunnerOption = NodePgMigrate.RunnerOption;
type MigrationBuilder = NodePgMigrate.MigrationBuilder;

/** The settings of every migrate session in a tenant or template database. */
export interface SessionLimits {
  /** How long a migration waits for a lock (a tenant session's) before it fails with 55P03. */
  lockTimeoutMs: number;
  /** How long one statement may run. */
  statementTimeoutMs: number;
}

export const DEFAULT_LIMITS: SessionLimits = { lockTimeoutMs: 5000, statementTimeoutMs: 600_000 };

export async function prepareSession(c: Client, limits: SessionLimits): Promise<void> {
  await c.query(
    `SET lock_timeout = ${Math.trunc(limits.lockTimeoutMs)}; SET statement_timeout = ${Math.trunc(limits.statementTimeoutMs)};` +
      ` SET idle_in_transaction_session_timeout = 0; SET search_path = pg_catalog; SET application_name = 'pg-tenants migrate'`,
  );
}

/**
 * The file's SQL as the library runs it: the body as `role` with the app schemas on the path,
 * the checksum for the history row's default, then back to the provisioning role for the INSERT.
 * SET LOCAL ends with the transaction, so nothing carries over to the next file.
 */
function wrapped(m: Migration, role: string, searchPath: readonly string[]): string {
  return [
    `SET LOCAL ROLE ${quoteIdent(role)};`,
    `SET LOCAL search_path TO ${[...searchPath, "public"].map(quoteIdent).join(", ")};`,
    `SET LOCAL pgtenants.checksum TO '${m.checksum}';`,
    m.sql,
    ";",
    "RESET ROLE;",
    "SET LOCAL search_path TO pg_catalog;",
  ].join("\n");
}

const quiet = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

function options(
  c: Client,
  migrations: readonly Migration[],
  extra: Partial<RunnerOption>,
): RunnerOption {
  return {
    dbClient: c,
    // The exact files of this version: the library never sees a file past the target.
    dir: migrations.map((m) => m.file),
    useGlob: true,
    migrationsSchema: HISTORY_SCHEMA,
    migrationsTable: HISTORY_TABLE,
    direction: "up",
    noLock: true,
    checkOrder: true,
    logger: quiet,
    ...extra,
  } as RunnerOption;
}

/** Creates the history and records 0001 as applied: a database cloned from the first template. */
export async function baseline(
  c: Client,
  migrations: readonly Migration[],
  origin: { template: string; version: number; how: string },
): Promise<void> {
  const first = migrations[0];
  await c.query("BEGIN");
  try {
    await c.query(HISTORY_DDL);
    await c.query(`DELETE FROM ${HISTORY_SCHEMA}.origin`);
    await c.query(
      `INSERT INTO ${HISTORY_SCHEMA}.origin (template, version, how) VALUES ($1, $2, $3)`,
      [origin.template, origin.version, origin.how],
    );
    await c.query(`SET LOCAL pgtenants.checksum TO '${first.checksum}'`);
    await c.query(`SET LOCAL pgtenants.role TO 'template'`);
    await c.query(
      `INSERT INTO ${HISTORY_SCHEMA}.${HISTORY_TABLE} (name, run_on) VALUES ($1, pg_catalog.now())`,
      [first.name],
    );
    await c.query("COMMIT");
  } catch (e) {
    await c.query("ROLLBACK").catch(() => undefined);
    throw e;
  }
}

export interface ApplyFailure {
  /** SQLSTATE of the failing statement, when PostgreSQL gave one. */
  code?: string;
  message: string;
  /** The migration that failed (rolled back whole). */
  migration: string;
}

/**
 * Applies `pending` (the next files after what the history has) as `role`. Returns the names
 * applied; on a failure, the library leaves its transaction open: it is rolled back here, and
 * the failure says which file failed and why, while every file before it stays committed.
 */
export async function applyPending(
  c: Client,
  migrations: readonly Migration[],
  pending: readonly Migration[],
  role: string,
  searchPath: readonly string[],
): Promise<{ applied: string[]; failure?: ApplyFailure }> {
  if (pending.length === 0) return { applied: [] };
  const target = pending[pending.length - 1].version;
  const upTo = migrations.slice(0, target);
  const byFile = new Map(upTo.map((m) => [path.resolve(m.file), m]));
  const applied: string[] = [];
  await c.query(`SET pgtenants.role TO ${c.escapeLiteral(role)}`);
  try {
    await runner(
      options(c, upTo, {
        singleTransaction: false,
        migrationLoaderStrategies: [
          {
            extensions: [".sql"],
            loader: async (files: string[]) =>
              files.map((file) => {
                const m = byFile.get(path.resolve(file));
                if (m === undefined) throw new Error(`${file} is not a migration of this run`);
                return {
                  id: file,
                  filePaths: [file],
                  actions: {
                    up: (pgm: MigrationBuilder) => {
                      pgm.sql(wrapped(m, role, searchPath));
                      applied.push(m.name);
                    },
                    down: false as const,
                  },
                };
              }),
          },
        ],
      }),
    );
    return { applied };
  } catch (e) {
    await c.query("ROLLBACK").catch(() => undefined);
    // The file whose body was being run is the last one the loader handed out.
    const failed = applied.pop() ?? pending[0].name;
    return { applied, failure: { ...rootCause(e), migration: failed } };
  } finally {
    await c.query("RESET pgtenants.role").catch(() => undefined);
  }
}

/** node-pg-migrate wraps the server's error; the first one with a SQLSTATE is what happened. */
function rootCause(e: unknown): { code?: string; message: string } {
  let cur = e as { message?: string; code?: string; cause?: unknown } | undefined;
  const first = cur;
  while (cur !== undefined && cur.code === undefined && cur.cause !== undefined) {
    cur = cur.cause as typeof cur;
  }
  const found = cur?.code !== undefined ? cur : first;
  return {
    ...(found?.code !== undefined ? { code: found.code } : {}),
    message: (found?.message ?? String(e)).split("\n")[0],
  };
}
