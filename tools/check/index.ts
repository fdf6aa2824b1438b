import * as fs from "fs";
import * as path from "path";
import { diffManifests, readManifestEntries } from "../../infra/changes";
import { InputError, InputIssue } from "../../infra/issues";
import { readTenantFiles } from "../../infra/manifest";
import { PACK_NAME, policies } from "../../policy/pack";
import { CommandIo, EXIT, processIo, readCommandArgs, runCommand, UsageError } from "../lib/cli";
import { deploymentIssues, loadStack, loadStackTenants } from "../stack";
import { recordProgram } from "./record";
import { PackConfig, mergePackConfig, runPolicies, stackPolicyConfig } from "./policies";
import { summarize } from "./summary";
import { readBaseFiles } from "./base";
import { stackMigrationPlan } from "../lib/migrations/pending";
import { CheckReport, renderMarkdown, renderText } from "./report";

/**
 * `npm run check -- --stack <name> [--format text|markdown|json] [--base <dir or git ref>]
 * [--policy-config <file>]`: the pull-request gate without credentials, network or the Pulumi
 * CLI. Validates the stack config and the manifest, runs the real program (infra/index.ts) under
 * the SDK's mock runtime, runs every policy of the pack (policy/pack.ts) on what it registers,
 * and prints per tenant what will exist and every violation. With --base it also compares the
 * manifest with the base branch's. Exit 0: no mandatory violation; 1: mandatory violations;
 * 2: bad usage, config or manifest.
 */

// The check's parts, for the tests and benchmarks that drive them one by one.
export { PLACEHOLDER_SECRET, recordProgram } from "./record";
export type { Registration } from "./record";
export { mergePackConfig, runPolicies, stackPolicyConfig } from "./policies";
export type { PackConfig, Violation } from "./policies";
export { summarize } from "./summary";
export type { PlacementSummary, TenantSummary } from "./summary";
export { readBaseFiles } from "./base";
export { renderMarkdown, renderText } from "./report";
export type { CheckReport } from "./report";

export const FORMATS = ["text", "markdown", "json"] as const;
type Format = (typeof FORMATS)[number];

function readPackConfig(file: string, root: string): PackConfig {
  const full = path.resolve(root, file);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(full, "utf8"));
  } catch (e) {
    throw new InputError("The policy config cannot be read:", [
      { file, field: "", message: (e as Error).message },
    ]);
  }
  const names = policies.map((p) => p.name);
  const issues: InputIssue[] = [];
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    issues.push({
      file,
      field: "",
      message: "must be an object {policy name: enforcement level or settings}",
    });
  } else {
    for (const key of Object.keys(parsed)) {
      if (key !== "all" && !names.includes(key)) {
        issues.push({
          file,
          field: key,
          message: `unknown policy; the pack has: ${names.join(", ")}`,
        });
      }
    }
  }
  if (issues.length > 0) throw new InputError("The policy config is invalid:", issues);
  const config = parsed as PackConfig;
  // `all` sets every policy's level, as the engine's pack config does.
  const all = config.all;
  if (all === undefined) return config;
  const level = typeof all === "string" ? all : all.enforcementLevel;
  return Object.fromEntries(
    names.map((n) => {
      const own = config[n];
      const settings = typeof own === "string" ? { enforcementLevel: own } : (own ?? {});
      return [n, { enforcementLevel: level, ...settings }];
    }),
  );
}

/** Runs the whole check for a stack; throws InputError for config and manifest problems. */
export async function check(
  stack: string,
  options: { root: string; base?: string; packConfig?: PackConfig },
): Promise<CheckReport> {
  const started = process.hrtime.bigint();
  const cfg = loadStack(stack, options.root);
  const tenants = loadStackTenants(cfg, options.root);
  const shardIssues = deploymentIssues(cfg, tenants, options.root);
  if (shardIssues.length > 0) {
    throw new InputError(
      `The shards of stack ${stack}'s deployment must hold each tenant exactly once:`,
      shardIssues,
    );
  }
  const registrations = await recordProgram(stack, cfg, options.root);
  const packConfig = mergePackConfig(stackPolicyConfig(cfg), options.packConfig ?? {});
  const violations = await runPolicies(registrations, packConfig);
  const disabled = policies
    .filter((p) => {
      const c = packConfig[p.name];
      return (typeof c === "string" ? c : c?.enforcementLevel) === "disabled";
    })
    .map((p) => p.name);
  let changes: CheckReport["changes"];
  if (options.base !== undefined) {
    const head = readTenantFiles(path.resolve(options.root, cfg.tenantsDir), options.root);
    const base = readBaseFiles(options.base, cfg.tenantsDir, options.root);
    changes = {
      base: options.base,
      ...diffManifests(readManifestEntries(base), readManifestEntries(head)),
    };
  }
  const migrations = stackMigrationPlan(cfg, options.root, options.base);
  const ok =
    violations.every((v) => v.level !== "mandatory") &&
    (changes === undefined || changes.violations.length === 0) &&
    (migrations === undefined || migrations.problems.length === 0);
  return {
    stack,
    ok,
    manifestTenants: tenants.length,
    tenants: summarize(registrations, tenants),
    clusters: Object.keys(cfg.clusters),
    resources: registrations.length,
    policies: {
      pack: PACK_NAME,
      count: policies.length,
      ...(disabled.length > 0 ? { disabled } : {}),
    },
    violations,
    ...(changes !== undefined ? { changes } : {}),
    ...(migrations !== undefined ? { migrations } : {}),
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  };
}

export async function main(argv: string[], io: CommandIo = processIo()): Promise<number> {
  let format: Format = "text";
  return runCommand(io, async () => {
    const args = readCommandArgs(argv, "check");
    const stack = args.value("stack");
    const chosen = args.value("format");
    if (!(FORMATS as readonly string[]).includes(chosen)) {
      throw new UsageError(`--format must be one of ${FORMATS.join(", ")}\nusage: ${args.usage}`);
    }
    format = chosen as Format;
    const base = args.text("base");
    const policyConfig = args.text("policy-config");
    try {
      const report = await check(stack, {
        root: io.root,
        ...(base !== undefined ? { base } : {}),
        ...(policyConfig !== undefined
          ? { packConfig: readPackConfig(policyConfig, io.root) }
          : {}),
      });
      io.out(
        format === "json"
          ? JSON.stringify(report, null, 2)
          : format === "markdown"
            ? renderMarkdown(report)
            : renderText(report),
      );
      return report.ok ? EXIT.ok : EXIT.failed;
    } catch (e) {
      // Machines reading --format json get the problems as JSON too, besides the message on stderr.
      if (format === "json" && e instanceof InputError) {
        io.out(JSON.stringify({ stack, ok: false, errors: e.issues }, null, 2));
      }
      throw e;
    }
  });
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
