import {
  CONTAINMENT_SCHEMA,
  EMPTY_TEMPLATE,
  clusterContainmentSql,
  databaseContainmentSql,
  serverSettings,
} from "../infra/containment";
import { quoteIdent } from "../infra/sql";
import {
  CommandError,
  CommandIo,
  EXIT,
  processIo,
  readCommandArgs,
  runCommand,
  UsageError,
} from "./lib/cli";
import { loadStack } from "./stack";

/**
 * `pg-tenants containment-sql --stack <name> --tier <tier> [--pg-major <n>]`: the superuser SQL
 * that puts the containment model (infra/containment.ts) on a cluster the tools did not start:
 * what tools/cluster.ts's bootstrap runs on embedded clusters, for an operator to run once per
 * cluster (psql as a superuser), in the order printed. The provisioning role cannot do it: the
 * ACLs of pg_catalog and role settings such as lo_compat_privileges need a superuser.
 */

export function containmentScript(
  provisioner: string,
  template: string,
  pgMajor: number,
  settings: Record<string, string>,
): string {
  const sep = (s: string) => (s.trimEnd().endsWith(";") ? s : `${s};`);
  const lines = [
    `-- pg-tenants containment for PostgreSQL ${pgMajor}: run as a superuser, in this order.`,
    "-- 1. Server settings (parameter group or postgresql.conf; max_connections and",
    "--    reserved_connections need a restart). The audit compares the live values with these.",
    ...Object.entries(settings).map(([name, value]) => `--    ${name} = ${value}`),
    "",
    "-- 2. In the maintenance database (psql -d postgres):",
    ...clusterContainmentSql(provisioner, pgMajor).map(sep),
    "",
    `-- 3. In the template ${template}, in ${EMPTY_TEMPLATE} (create it first if missing:`,
    `--    CREATE DATABASE ${quoteIdent(EMPTY_TEMPLATE)} TEMPLATE template0; then mark it IS_TEMPLATE true`,
    "--    ALLOW_CONNECTIONS false like the template), and in every tenant database that exists",
    "--    already (psql -d <database>; a template must allow connections while you run it):",
    ...databaseContainmentSql(provisioner).map(sep),
    "",
    `-- Schema ${CONTAINMENT_SCHEMA} now holds the capped advisory-lock functions of the capability.`,
  ];
  return lines.join("\n") + "\n";
}

export async function main(argv: string[], io: CommandIo = processIo()): Promise<number> {
  return runCommand(io, async () => {
    const args = readCommandArgs(argv, "containment-sql");
    const cfg = loadStack(args.value("stack"), io.root);
    const tier = args.value("tier");
    const cluster = cfg.clusters[tier];
    if (cluster === undefined) {
      throw new CommandError(
        `stack ${cfg.stack} has no cluster "${tier}" (tiers: ${Object.keys(cfg.clusters).join(", ")})`,
      );
    }
    const major = Number(args.value("pg-major"));
    if (!Number.isInteger(major) || major < 15 || major > 18) {
      throw new UsageError(`--pg-major must be 15, 16, 17 or 18\nusage: ${args.usage}`);
    }
    io.out(
      containmentScript(
        cluster.username,
        cfg.template,
        major,
        serverSettings(cluster.server, major),
      ).trimEnd(),
    );
    return EXIT.ok;
  });
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
