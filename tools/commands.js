// @ts-check
/**
 * Every command of `pg-tenants`, stated once: its arguments and options feed the command line's
 * parser and `--help` (bin/pg-tenants.js) and each tool's own argument check (tools/lib/cli.ts
 * parseCommandArgs). Plain JavaScript, so that `--help` and usage errors load no TypeScript.
 */

/**
 * @typedef {object} OptionSpec
 * @property {"string" | "boolean"} type
 * @property {string} description
 * @property {string} [value] What a string option's value is, as `--help` shows it (`<name>`).
 * @property {string | boolean} [default]
 * @property {boolean} [multiple] May be given more than once.
 * @property {boolean} [required] The command refuses to run without it.
 *
 * @typedef {object} ArgumentSpec
 * @property {string} name
 * @property {string} description
 * @property {boolean} required
 *
 * @typedef {object} CommandSpec
 * @property {string} name
 * @property {string} summary One line for the command list.
 * @property {ArgumentSpec[]} args Positional arguments, in order; no others are accepted.
 * @property {Record<string, OptionSpec>} options
 * @property {string} module The file under the project root whose exported `main(argv)` runs it.
 * @property {boolean} [rawArgs] The tool reads its own arguments (validated there, not here).
 */

/** The stack option every stack command takes, spelled and defaulted the same everywhere. */
const STACK = {
  type: /** @type {const} */ ("string"),
  value: "<name>",
  default: "local",
  description: "stack to act on (stacks/Pulumi.<name>.yaml)",
};

/** @type {Record<string, OptionSpec>} */
const FORMAT_REPORT = {
  format: {
    type: "string",
    value: "<text|json|markdown>",
    default: "text",
    description: "output format",
  },
};

const TENANT = {
  name: "tenant",
  description: "tenant id (its file is <tenantsDir>/<id>.yaml)",
  required: true,
};

/** @type {CommandSpec[]} */
const COMMANDS = [
  {
    name: "check",
    summary:
      "offline check of a stack: what each tenant gets, every policy, changes against a base",
    args: [],
    options: {
      stack: STACK,
      format: {
        type: "string",
        value: "<text|markdown|json>",
        default: "text",
        description: "output format",
      },
      base: {
        type: "string",
        value: "<dir or git ref>",
        description: "compare the manifest with this base (a folder or a git revision)",
      },
      "policy-config": {
        type: "string",
        value: "<file>",
        description: "policy pack config (enforcement levels, thresholds) as JSON",
      },
    },
    module: "tools/check/index.ts",
  },
  {
    name: "schema",
    summary: "write tenants/tenant.schema.json from the manifest's schema (--check only compares)",
    args: [],
    options: {
      check: { type: "boolean", description: "compare only; exit 1 when the file is out of date" },
    },
    module: "tools/schema.ts",
  },
  {
    name: "hba",
    summary: "write each cluster's pg_hba.conf for a stack's manifest",
    args: [],
    options: {
      stack: STACK,
      out: {
        type: "string",
        value: "<dir>",
        required: true,
        description: "folder to write pg_hba.<tier>.conf into",
      },
    },
    module: "tools/hba.ts",
  },
  {
    name: "engine",
    summary:
      "build the Pulumi CLI and the postgresql and random plugins from the pinned Go modules into .engine/",
    args: [],
    options: {
      force: { type: "boolean", description: "rebuild what is up to date too" },
    },
    module: "tools/engine.ts",
  },
  {
    name: "local",
    summary:
      "the local stack: up (default), stop, url <tenant> <rw|ro> [--pooler], or pulumi <args...> (the engine's CLI on it)",
    args: [
      { name: "action", description: "up, stop, url or pulumi", required: false },
      { name: "tenant", description: "with url: the tenant id", required: false },
      { name: "login", description: "with url: rw or ro", required: false },
    ],
    options: {
      pooler: {
        type: "boolean",
        description: "with url: the URL through the cluster's PgBouncer",
      },
    },
    module: "tools/local.ts",
    rawArgs: true,
  },
  {
    name: "audit",
    summary: "read a stack's live clusters and check every invariant of the isolation model",
    args: [],
    options: {
      stack: STACK,
      ...FORMAT_REPORT,
      pool: {
        type: "string",
        value: "<connections per cluster>",
        default: "4",
        description: "connections per cluster for the per-database checks",
      },
      credentials: {
        type: "string",
        value: "<file>",
        description:
          "the stack's credentials output as JSON (pulumi stack output --json --show-secrets credentials): each active login also authenticates with its own",
      },
    },
    module: "tools/audit/index.ts",
  },
  {
    name: "migrate",
    summary:
      "bring every tenant database to the stack's template version: canary, then waves; --dry-run, --check (drift)",
    args: [],
    options: {
      stack: STACK,
      "dry-run": { type: "boolean", description: "print the plan per tenant and change nothing" },
      check: {
        type: "boolean",
        description: "compare each tenant's schema with its template's at the same version",
      },
      templates: {
        type: "boolean",
        description: "only build the template versions the stack names (before pulumi up)",
      },
      tenant: {
        type: "string",
        value: "<id>",
        multiple: true,
        description: "only this tenant (repeatable); a tenant with a declared move only when named",
      },
      canary: {
        type: "string",
        value: "<ids|count>",
        default: "1",
        description: "tenants migrated first, alone: comma-separated ids, or how many (0: none)",
      },
      "wave-size": {
        type: "string",
        value: "<n>",
        default: "50",
        description: "tenants per wave after the canary (0: all in one wave)",
      },
      parallel: {
        type: "string",
        value: "<n>",
        default: "8",
        description: "tenants migrated at once per cluster",
      },
      "lock-timeout": {
        type: "string",
        value: "<ms>",
        default: "5000",
        description: "how long a migration waits for a lock a tenant session holds",
      },
      "continue-on-error": {
        type: "boolean",
        description: "go on after a failed tenant instead of stopping at the first",
      },
      verify: {
        type: "boolean",
        description: "open every tenant database, trusting no ledger row",
      },
      ...FORMAT_REPORT,
    },
    module: "tools/migrate.ts",
  },
  {
    name: "usage",
    summary:
      "per-tenant load, connections and size over a sampled interval; --advise: whom to move where",
    args: [],
    options: {
      stack: STACK,
      interval: {
        type: "string",
        value: "<duration>",
        default: "60s",
        description: "the sampled interval, at least 10s (e.g. 60s, 5m, 1h)",
      },
      format: {
        type: "string",
        value: "<text|json|markdown|html>",
        default: "text",
        description: "output format (html: a self-contained report)",
      },
      advise: {
        type: "boolean",
        description: "name the tenants over their tier's thresholds, and the move to declare",
      },
      metrics: {
        type: "string",
        value: "<file>",
        description: "also write the figures as a Prometheus textfile (node_exporter)",
      },
      serve: {
        type: "string",
        value: "<[host:]port>",
        description: "serve Prometheus metrics at /metrics, one interval after another",
      },
    },
    module: "tools/usage.ts",
  },
  {
    name: "move",
    summary:
      "move a tenant to the tier its file declares (copy, verify, switch); resumes an interrupted move, --abort gives it back",
    args: [TENANT],
    options: {
      stack: STACK,
      wait: {
        type: "string",
        value: "<seconds>",
        default: "30",
        description: "how long to wait for the tenant's sessions to end",
      },
      abort: {
        type: "boolean",
        description: "give the source back: stop an interrupted move and empty the target",
      },
    },
    module: "tools/move/index.ts",
  },
  {
    name: "offboard",
    summary: "final dump of an offboarded tenant; --purge drops it after retention",
    args: [TENANT],
    options: {
      stack: STACK,
      out: { type: "string", value: "<file>", description: "where the final dump goes" },
      purge: {
        type: "boolean",
        default: false,
        description: "drop the tenant's database and roles",
      },
      confirm: {
        type: "string",
        value: "<tenant>",
        description: "with --purge: the tenant id again",
      },
      "final-dump": {
        type: "string",
        value: "<file>",
        description: "with --purge: the final dump to check first",
      },
    },
    module: "tools/offboard.ts",
  },
  {
    name: "backup",
    summary: "dump one tenant's database with a manifest of what it holds",
    args: [TENANT],
    options: {
      stack: STACK,
      out: { type: "string", value: "<file>", description: "where the dump goes" },
    },
    module: "tools/backup.ts",
  },
  {
    name: "restore",
    summary: "restore a tenant's dump into a new database beside the live one",
    args: [TENANT, { name: "dump", description: "the dump file", required: true }],
    options: {
      stack: STACK,
      "without-manifest": {
        type: "boolean",
        default: false,
        description: "restore a dump that has no manifest beside it",
      },
    },
    module: "tools/restore.ts",
  },
  {
    name: "containment-sql",
    summary:
      "the superuser SQL that puts the containment model on a cluster the tools did not start",
    args: [],
    options: {
      stack: STACK,
      tier: { type: "string", value: "<tier>", required: true, description: "the cluster's tier" },
      "pg-major": {
        type: "string",
        value: "<15|16|17|18>",
        default: "17",
        description: "the server's major version",
      },
    },
    module: "tools/containmentSql.ts",
  },
  {
    name: "watchdog",
    summary:
      "end tenant sessions over their limits (statement and idle timeouts, offboarded, advisory locks)",
    args: [],
    options: {
      stack: STACK,
      once: { type: "boolean", description: "one pass over every cluster, then exit" },
      interval: {
        type: "string",
        value: "<seconds>",
        default: "30",
        description: "seconds between passes",
      },
      "dry-run": { type: "boolean", description: "list the sessions it would end, end none" },
    },
    module: "tools/watchdog.ts",
  },
  {
    name: "affected",
    summary: "the stacks a change affects, as JSON (for CI)",
    args: [],
    options: {
      base: {
        type: "string",
        value: "<git ref>",
        required: true,
        description: "the base revision",
      },
      stack: {
        type: "string",
        value: "<name>",
        multiple: true,
        description: "only these stacks (repeatable); default every stack",
      },
      "allow-moves": {
        type: "boolean",
        description: "tenants that change stack have had their state moved already",
      },
    },
    module: "tools/affected.ts",
  },
  {
    name: "bench",
    summary:
      "measure the program, provisioning, check, audit, client, CLI start, pooler, engine, migrations and moves",
    args: [],
    options: {
      quick: { type: "boolean", description: "fewer tenants and repeats" },
      only: { type: "string", value: "<sections>", description: "comma-separated sections" },
      write: { type: "boolean", description: "write bench/RESULTS.md (default unless --quick)" },
      "no-write": { type: "boolean", description: "do not write bench/RESULTS.md" },
    },
    module: "bench/run.ts",
    rawArgs: true,
  },
];

/** Exit codes of every command. */
const EXIT = { ok: 0, failed: 1, usage: 2 };

/**
 * @param {string} name
 * @returns {CommandSpec}
 */
function command(name) {
  const found = COMMANDS.find((c) => c.name === name);
  if (found === undefined) throw new Error(`no command ${name}`);
  return found;
}

/**
 * `pg-tenants audit [--stack <name>] [--format <text|json|markdown>] ...`: the usage line.
 * @param {CommandSpec} spec
 */
function usageLine(spec) {
  const args = spec.args.map((a) => (a.required ? `<${a.name}>` : `[${a.name}]`));
  const options = Object.entries(spec.options).map(([name, o]) => {
    const flag = o.type === "boolean" ? `--${name}` : `--${name} ${o.value ?? "<value>"}`;
    const shown = o.required === true ? flag : `[${flag}]`;
    return `${shown}${o.multiple === true ? "..." : ""}`;
  });
  return ["pg-tenants", spec.name, ...args, ...options].join(" ");
}

module.exports = { COMMANDS, EXIT, command, usageLine };
