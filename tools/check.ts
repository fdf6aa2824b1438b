import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import type {
  EnforcementLevel,
  PolicyProviderResource,
  PolicyResource,
  PolicyResourceOptions,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationPolicy,
} from "@pulumi/policy";
import * as pulumi from "@pulumi/pulumi";
import {
  specialResourceSig,
  specialSecretSig,
  specialSigKey,
  unknownValue,
} from "@pulumi/pulumi/runtime/rpc";
import { diffManifests, ManifestDiff, readManifestEntries } from "../infra/changes";
import { PROJECT, StackConfig } from "../infra/config";
import { InputError, InputIssue } from "../infra/issues";
import { readTenantFiles, SourceFile, Tenant } from "../infra/manifest";
import { clusterProviderName, ROLE_KINDS, roleLogicalName } from "../infra/naming";
import { PACK_NAME, policies } from "../policy/pack";
import { tenantOf, TYPES } from "../policy/tenancy";
import { evaluateProgram } from "./evaluate";
import { CommandIo, EXIT, processIo, readCommandArgs, runCommand, UsageError } from "./lib/cli";
import { deploymentIssues, loadStack, loadStackTenants, readStackFile } from "./stack";

/**
 * `npm run check -- --stack <name> [--format text|markdown|json] [--base <dir or git ref>]
 * [--policy-config <file>]`: the pull-request gate without credentials, network or the Pulumi
 * CLI. Validates the stack config and the manifest, runs the real program (infra/index.ts) under
 * the SDK's mock runtime, runs every policy of the pack (policy/pack.ts) on what it registers,
 * and prints per tenant what will exist and every violation. With --base it also compares the
 * manifest with the base branch's. Exit 0: no mandatory violation; 1: mandatory violations;
 * 2: bad usage, config or manifest.
 */

const FORMATS = ["text", "markdown", "json"] as const;
type Format = (typeof FORMATS)[number];

/** Stands in for secrets the stack file holds encrypted: nothing connects during a check. */
const PLACEHOLDER_SECRET = "placeholder-not-a-secret";

// ---------------------------------------------------------------------------------------------
// Recording what the program registers

/** One resource registration as the engine would receive it: inputs, options and dependencies. */
export interface Registration {
  /** The URN the engine would give it: every ancestor's type in the chain. */
  urn: string;
  type: string;
  name: string;
  custom: boolean;
  /** Inputs, secrets unwrapped (they are never printed). */
  inputs: Record<string, unknown>;
  /** Inputs plus the mocked provider outputs: what a stack policy sees. */
  state: Record<string, unknown>;
  parent?: string;
  provider?: string;
  protect: boolean;
  ignoreChanges: string[];
  aliases: string[];
  additionalSecretOutputs: string[];
  deleteBeforeReplace: boolean;
  dependencies: string[];
  propertyDependencies: Record<string, string[]>;
}

/**
 * Plain values from the wire form, as the policy SDK gives them to policies: secrets unwrapped,
 * resource references as their id or URN (nothing is constructed), unknowns left out.
 */
function plain(value: unknown): unknown {
  if (value === unknownValue) return undefined;
  if (Array.isArray(value)) return value.map(plain);
  if (value === null || typeof value !== "object") return value;
  const obj = value as Record<string, unknown>;
  if (obj[specialSigKey] === specialSecretSig) return plain(obj.value);
  if (obj[specialSigKey] === specialResourceSig) return (obj.id as string | undefined) || obj.urn;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    const p = plain(v);
    if (p !== undefined) out[k] = p;
  }
  return out;
}

interface ProtoStruct {
  toJavaScript(): Record<string, unknown>;
}

/** The parts of a RegisterResourceRequest the check reads. */
interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getCustom(): boolean;
  getObject(): ProtoStruct | undefined;
  getProtect(): boolean;
  getProvider(): string;
  getDependenciesList(): string[];
  getPropertydependenciesMap(): {
    forEach(cb: (value: { getUrnsList(): string[] }, key: string) => void): void;
  };
  getIgnorechangesList(): string[];
  getAliasurnsList(): string[];
  getAdditionalsecretoutputsList(): string[];
  getDeletebeforereplace(): boolean;
}

interface RegisterResponse {
  getUrn(): string;
  getObject(): ProtoStruct | undefined;
}

type Callback = (err: Error | null, resp?: RegisterResponse) => void;

interface Raw {
  mockUrn: string;
  req: RegisterRequest;
  state: Record<string, unknown>;
}

/**
 * Resource options never reach `Mocks.newResource`: the check reads them from the registration
 * request itself, by wrapping the mock monitor's registerResource. That is exactly what the
 * engine receives (protect, dependencies, property dependencies, parent, provider).
 */
function observeRegistrations(into: Raw[]): void {
  const monitor = pulumi.runtime.getMonitor() as unknown as {
    registerResource: (req: RegisterRequest, cb: Callback) => unknown;
  };
  const original = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, cb) =>
    original(req, (err, resp) => {
      if (err === null && resp !== undefined) {
        into.push({
          mockUrn: resp.getUrn(),
          req,
          state: plain(resp.getObject()?.toJavaScript() ?? {}) as Record<string, unknown>,
        });
      }
      cb(err, resp);
    });
}

/** Outputs the real providers compute, as harmless placeholders; no random value is generated. */
class CheckMocks implements pulumi.runtime.Mocks {
  newResource(args: pulumi.runtime.MockResourceArgs): {
    id: string;
    state: Record<string, unknown>;
  } {
    const id = `${args.name}-id`;
    const outputs: Record<string, unknown> = {};
    switch (args.type) {
      case TYPES.randomPassword:
        outputs.result = PLACEHOLDER_SECRET;
        break;
      case TYPES.randomBytes:
        outputs.base64 = Buffer.alloc(32).toString("base64");
        break;
      case TYPES.kmsKey:
        outputs.keyId = id;
        outputs.arn = `arn:aws:kms:check:000000000000:key/${id}`;
        break;
      case TYPES.kmsCiphertext:
        outputs.ciphertextBlob = `ciphertext-${id}`;
        break;
      case TYPES.secret:
        outputs.arn = `arn:aws:secretsmanager:check:000000000000:secret:${id}`;
        break;
    }
    return { id, state: { ...args.inputs, ...outputs } };
  }

  call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
    throw new Error(
      `the program invoked ${args.token}: the offline check cannot read from a provider`,
    );
  }
}

/** Runs the real program for a stack under mocks and returns every registration, engine-shaped. */
export async function recordProgram(
  stack: string,
  cfg: StackConfig,
  root: string,
): Promise<Registration[]> {
  const file = readStackFile(stack, root);
  // The program reads the tenants folder relative to its working directory: give it the folder
  // this check validated, wherever the check runs from.
  const config: Record<string, unknown> = {
    ...file.raw,
    tenantsDir: path.resolve(root, cfg.tenantsDir),
  };
  for (const key of file.secureKeys) {
    config[key] =
      key === "clusterPasswords"
        ? Object.fromEntries(Object.keys(cfg.clusters).map((tier) => [tier, PLACEHOLDER_SECRET]))
        : PLACEHOLDER_SECRET;
  }
  // Local stacks get their passwords at `npm run local` time: the file has none.
  if (!("clusterPasswords" in config)) {
    config.clusterPasswords = Object.fromEntries(
      Object.keys(cfg.clusters).map((tier) => [tier, PLACEHOLDER_SECRET]),
    );
  }
  const raw: Raw[] = [];
  // The SDK captures a stack trace for every promise and resource (for leak reports and source
  // positions the engine displays); mapped through the transpiler's source maps that was most of the run's
  // time. The check prints neither, so it captures no frames while the program runs.
  const sourceMaps = process.sourceMapsEnabled;
  const stackTraceLimit = Error.stackTraceLimit;
  process.setSourceMapsEnabled(false);
  Error.stackTraceLimit = 0;
  try {
    await evaluateProgram({
      stack,
      config,
      otherConfig: file.other,
      mocks: new CheckMocks(),
      beforeRun: () => observeRegistrations(raw),
    });
  } finally {
    process.setSourceMapsEnabled(sourceMaps);
    Error.stackTraceLimit = stackTraceLimit;
  }
  return toRegistrations(stack, raw);
}

/** The root of the mocked run; the engine leaves its type out of every URN. */
const ROOT_STACK_TYPE = "pulumi:pulumi:Stack";

function toRegistrations(stack: string, all: readonly Raw[]): Registration[] {
  const raw = all.filter((r) => r.req.getType() !== ROOT_STACK_TYPE);
  const byMockUrn = new Map(raw.map((r) => [r.mockUrn, r]));
  const chains = new Map<string, string>();
  const chain = (r: Raw): string => {
    const known = chains.get(r.mockUrn);
    if (known !== undefined) return known;
    const parent = byMockUrn.get(r.req.getParent());
    const value = parent === undefined ? r.req.getType() : `${chain(parent)}$${r.req.getType()}`;
    chains.set(r.mockUrn, value);
    return value;
  };
  const urnOf = (mockUrn: string): string | undefined => {
    const r = byMockUrn.get(mockUrn);
    return r === undefined
      ? undefined
      : `urn:pulumi:${stack}::${PROJECT}::${chain(r)}::${r.req.getName()}`;
  };
  return raw.map((r) => {
    const { req } = r;
    const propertyDependencies: Record<string, string[]> = {};
    req.getPropertydependenciesMap().forEach((deps, key) => {
      propertyDependencies[key] = deps.getUrnsList().flatMap((u) => urnOf(u) ?? []);
    });
    const providerRef = req.getProvider();
    const provider =
      providerRef === "" ? undefined : urnOf(providerRef.slice(0, providerRef.lastIndexOf("::")));
    const parent = urnOf(req.getParent());
    return {
      urn: urnOf(r.mockUrn) as string,
      type: req.getType(),
      name: req.getName(),
      custom: req.getCustom(),
      inputs: plain(req.getObject()?.toJavaScript() ?? {}) as Record<string, unknown>,
      state: r.state,
      ...(parent !== undefined ? { parent } : {}),
      ...(provider !== undefined ? { provider } : {}),
      protect: req.getProtect(),
      ignoreChanges: req.getIgnorechangesList(),
      aliases: req.getAliasurnsList(),
      additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
      deleteBeforeReplace: req.getDeletebeforereplace(),
      dependencies: req.getDependenciesList().flatMap((u) => urnOf(u) ?? []),
      propertyDependencies,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Running the pack

export interface Violation {
  policy: string;
  level: Exclude<EnforcementLevel, "disabled">;
  message: string;
  /** The tenant the resource belongs to, if any. */
  tenant?: string;
  resource?: { type: string; name: string; urn: string };
}

/** `--policy-config`: the same JSON as `pulumi preview --policy-pack-config`. */
export type PackConfig = Record<
  string,
  EnforcementLevel | ({ enforcementLevel?: EnforcementLevel } & Record<string, unknown>)
>;

/**
 * The policy settings a stack's own config decides: its name prefix, without which a stack with
 * another prefix would be judged by names it does not use (tenants unrecognised, checks skipped).
 * Approved templates are not among them: approving a template is the pack owner's review.
 */
export function stackPolicyConfig(cfg: StackConfig): PackConfig {
  const fromStack: Record<string, unknown> = { namePrefix: cfg.namePrefix };
  const out: PackConfig = {};
  for (const policy of policies) {
    const keys = Object.keys(policy.configSchema?.properties ?? {});
    const settings = Object.fromEntries(
      Object.entries(fromStack).filter(([key]) => keys.includes(key)),
    );
    if (Object.keys(settings).length > 0) out[policy.name] = settings;
  }
  return out;
}

/** Settings supplied with --policy-config win over the stack's, key by key. */
export function mergePackConfig(base: PackConfig, supplied: PackConfig): PackConfig {
  const out: PackConfig = { ...base };
  for (const [name, value] of Object.entries(supplied)) {
    const over = typeof value === "string" ? { enforcementLevel: value } : value;
    const under = out[name];
    out[name] = { ...(typeof under === "object" ? under : {}), ...over };
  }
  return out;
}

class NotApplicable extends Error {}

/** Runs every policy of the pack on the registrations, as the engine does at preview. */
export async function runPolicies(
  registrations: readonly Registration[],
  packConfig: PackConfig = {},
): Promise<Violation[]> {
  const byUrn = new Map(registrations.map((r) => [r.urn, r]));
  const optsOf = (r: Registration): PolicyResourceOptions => ({
    protect: r.protect,
    ignoreChanges: r.ignoreChanges,
    aliases: r.aliases,
    customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
    additionalSecretOutputs: r.additionalSecretOutputs,
    deleteBeforeReplace: r.deleteBeforeReplace,
    ...(r.parent !== undefined ? { parent: r.parent } : {}),
  });
  const providerOf = (r: Registration): PolicyProviderResource | undefined => {
    const p = r.provider === undefined ? undefined : byUrn.get(r.provider);
    return p === undefined
      ? undefined
      : { type: p.type, name: p.name, urn: p.urn, props: p.inputs };
  };
  const typeCheck = (type: string) => ({
    isType: (cls: unknown) => (cls as { __pulumiType?: string }).__pulumiType === type,
  });

  // Stack policies see every resource with its parent and dependencies linked.
  const resources = new Map<string, PolicyResource>();
  for (const r of registrations) {
    const provider = providerOf(r);
    resources.set(r.urn, {
      type: r.type,
      name: r.name,
      urn: r.urn,
      props: r.state,
      opts: optsOf(r),
      ...(provider !== undefined ? { provider } : {}),
      dependencies: [],
      propertyDependencies: {},
      ...typeCheck(r.type),
      asType: () => undefined,
    });
  }
  for (const r of registrations) {
    const res = resources.get(r.urn) as PolicyResource;
    if (r.parent !== undefined) res.parent = resources.get(r.parent);
    res.dependencies = r.dependencies.flatMap((u) => resources.get(u) ?? []);
    for (const [prop, urns] of Object.entries(r.propertyDependencies)) {
      res.propertyDependencies[prop] = urns.flatMap((u) => resources.get(u) ?? []);
    }
  }

  const violations: Violation[] = [];
  for (const policy of policies) {
    const supplied = packConfig[policy.name];
    const settings =
      typeof supplied === "string" ? { enforcementLevel: supplied } : (supplied ?? {});
    const level = settings.enforcementLevel ?? policy.enforcementLevel ?? "mandatory";
    if (level === "disabled") continue;
    const config = Object.fromEntries(
      Object.entries(settings).filter(([key]) => key !== "enforcementLevel"),
    );
    const getConfig = <T extends object>() => config as T;
    const notApplicable = (reason?: string): never => {
      throw new NotApplicable(reason);
    };
    const report = (r: Registration | undefined) => (message: string, urn?: string) => {
      const target = urn !== undefined ? byUrn.get(urn) : r;
      const tenant = target === undefined ? undefined : tenantOf(target);
      violations.push({
        policy: policy.name,
        level: level === "remediate" ? "mandatory" : level,
        message,
        ...(tenant !== undefined ? { tenant } : {}),
        ...(target !== undefined
          ? { resource: { type: target.type, name: target.name, urn: target.urn } }
          : {}),
      });
    };
    try {
      if ("validateStack" in policy) {
        await (policy as StackValidationPolicy).validateStack(
          { resources: [...resources.values()], stackTags: new Map(), getConfig, notApplicable },
          report(undefined),
        );
        continue;
      }
      const validate = (policy as ResourceValidationPolicy).validateResource;
      const validations =
        validate === undefined ? [] : Array.isArray(validate) ? validate : [validate];
      for (const r of registrations) {
        const provider = providerOf(r);
        const args: ResourceValidationArgs = {
          type: r.type,
          props: r.inputs,
          urn: r.urn,
          name: r.name,
          opts: optsOf(r),
          ...(provider !== undefined ? { provider } : {}),
          stackTags: new Map(),
          ...typeCheck(r.type),
          asType: () => undefined,
          getConfig,
          notApplicable,
        };
        for (const v of validations) {
          try {
            await v(args, report(r));
          } catch (e) {
            if (!(e instanceof NotApplicable)) throw e;
          }
        }
      }
    } catch (e) {
      if (!(e instanceof NotApplicable)) {
        throw new Error(`policy ${policy.name} failed: ${(e as Error).message}`);
      }
    }
  }
  return violations;
}

// ---------------------------------------------------------------------------------------------
// What will exist

export interface PlacementSummary {
  cluster: string;
  host: string;
  port: number;
  database: string;
  roles: string[];
}

export interface TenantSummary {
  id: string;
  displayName: string;
  state: string;
  /** The tier a declared move goes to. */
  movingTo?: string;
  placements: PlacementSummary[];
  /** `alias/...` of the tenant's KMS key, or `local` (data key kept as a secret stack output). */
  key: string;
}

/** Per tenant, from what the program registered: databases, roles and keys, by cluster. */
export function summarize(
  registrations: readonly Registration[],
  tenants: readonly Tenant[],
): TenantSummary[] {
  const byUrn = new Map(registrations.map((r) => [r.urn, r]));
  const mine = new Map<string, Registration[]>();
  for (const r of registrations) {
    const id = tenantOf(r);
    if (id !== undefined) mine.set(id, [...(mine.get(id) ?? []), r]);
  }
  const files = new Map(tenants.map((t) => [t.id, t]));
  return [...mine.keys()].sort().map((id) => {
    const own = mine.get(id) ?? [];
    const placements = own
      .filter((r) => r.type === TYPES.database)
      .map((db): PlacementSummary => {
        const placement = db.name.slice(0, db.name.lastIndexOf("-"));
        const provider = db.provider === undefined ? undefined : byUrn.get(db.provider);
        const tier = placement.slice(placement.indexOf("@") + 1);
        return {
          cluster:
            provider?.name === clusterProviderName(tier)
              ? tier
              : (provider?.name ?? "default provider"),
          host: String(provider?.inputs.host ?? ""),
          port: Number(provider?.inputs.port ?? 0),
          database: String(db.inputs.name ?? db.name),
          // In the model's order (group, owner, rw, ro), whatever order they registered in.
          roles: ROLE_KINDS.flatMap((kind) =>
            own
              .filter((r) => r.type === TYPES.role && r.name === roleLogicalName(placement, kind))
              .map((r) => String(r.inputs.name)),
          ),
        };
      });
    const alias = own.find((r) => r.type === TYPES.kmsAlias);
    const file = files.get(id);
    return {
      id,
      displayName: file?.displayName ?? id,
      state: file?.state ?? "unknown",
      ...(file?.move !== undefined ? { movingTo: file.move.to } : {}),
      placements,
      key: alias !== undefined ? String(alias.inputs.name) : "local",
    };
  });
}

// ---------------------------------------------------------------------------------------------
// The base branch's manifest

/** The tenant files of `base`: a folder (a checkout's root, or the tenants folder) or a git revision. */
export function readBaseFiles(base: string, tenantsDir: string, root: string): SourceFile[] {
  const relDir = path.relative(root, path.resolve(root, tenantsDir)).split(path.sep).join("/");
  const name = (file: string) => `${relDir}/${path.basename(file)}`;
  const asDir = path.resolve(root, base);
  if (fs.existsSync(asDir) && fs.statSync(asDir).isDirectory()) {
    const dir = fs.existsSync(path.join(asDir, relDir)) ? path.join(asDir, relDir) : asDir;
    return readTenantFiles(dir, root).map((f) => ({ file: name(f.file), text: f.text }));
  }
  const git = (args: string[]) => {
    try {
      return execFileSync("git", args, {
        cwd: root,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      });
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: string };
      if (err.code === "ENOENT")
        throw new UsageError("--base names a git revision, but git is not installed");
      throw new UsageError(
        `--base ${base} is neither a folder nor a git revision here (git ${args[0]}: ${
          String(err.stderr ?? err.message)
            .trim()
            .split("\n")[0]
        })`,
      );
    }
  };
  git(["rev-parse", "--verify", "--quiet", `${base}^{commit}`]);
  return git(["ls-tree", "--name-only", base, "--", `${relDir}/`])
    .split("\n")
    .filter((p) => /\.ya?ml$/.test(p))
    .sort()
    .map((p) => ({ file: name(p), text: git(["show", `${base}:./${p}`]) }));
}

// ---------------------------------------------------------------------------------------------
// Reports

export interface CheckReport {
  stack: string;
  ok: boolean;
  /** Tenants in the manifest, and those this stack declares (a shard may declare fewer). */
  manifestTenants: number;
  tenants: TenantSummary[];
  clusters: string[];
  resources: number;
  policies: { pack: string; count: number };
  violations: Violation[];
  changes?: { base: string } & ManifestDiff;
  /** Seconds the check took. */
  seconds: number;
}

const escapeCell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

function describeValue(v: unknown): string {
  return v === undefined ? "(none)" : typeof v === "string" ? v : JSON.stringify(v);
}

function changeLines(
  changes: NonNullable<CheckReport["changes"]>,
): [kind: string, tenant: string, details: string][] {
  return [
    ...changes.added.map((e): [string, string, string] => ["added", e.id, e.file]),
    ...changes.changed.map((c): [string, string, string] => [
      "changed",
      c.id,
      c.fields
        .map((f) => `${f.field}: ${describeValue(f.from)} → ${describeValue(f.to)}`)
        .join("; "),
    ]),
    ...changes.removed.map((e): [string, string, string] => ["removed", e.id, e.file]),
  ];
}

function placementText(p: PlacementSummary): string {
  return `${p.cluster} (${p.host}:${p.port})`;
}

function stateText(t: TenantSummary): string {
  return t.movingTo !== undefined ? `${t.state}, moving to ${t.movingTo}` : t.state;
}

function headline(report: CheckReport): string {
  const mandatory = report.violations.filter((v) => v.level === "mandatory").length;
  const advisory = report.violations.length - mandatory;
  const shard =
    report.tenants.length === report.manifestTenants
      ? ""
      : ` (of ${report.manifestTenants} in the manifest)`;
  return (
    `${report.tenants.length} tenant(s)${shard} on ${report.clusters.length} cluster(s), ${report.resources} resources, ` +
    `${report.policies.count} policies: ${mandatory} mandatory and ${advisory} advisory violation(s)` +
    (report.changes !== undefined
      ? `, ${report.changes.violations.length} refused manifest change(s)`
      : "")
  );
}

export function renderText(report: CheckReport): string {
  const lines = [
    `pg-tenants check of stack ${report.stack}: ${report.ok ? "passed" : "FAILED"}`,
    headline(report),
    "",
  ];
  lines.push("Tenants:");
  for (const t of report.tenants) {
    lines.push(`  ${t.id} (${t.displayName}), ${stateText(t)}, key ${t.key}`);
    for (const p of t.placements) {
      lines.push(`    ${placementText(p)}: database ${p.database}; roles ${p.roles.join(", ")}`);
    }
  }
  if (report.changes !== undefined) {
    lines.push("", `Changes against ${report.changes.base}:`);
    const changes = changeLines(report.changes);
    if (changes.length === 0) lines.push("  none");
    for (const [kind, id, details] of changes) lines.push(`  ${kind} ${id}: ${details}`);
    for (const v of report.changes.violations) lines.push(`  REFUSED [${v.rule}] ${v.message}`);
  }
  lines.push("", "Violations:");
  if (report.violations.length === 0) lines.push("  none");
  for (const v of report.violations) {
    const where = v.resource !== undefined ? ` ${v.resource.type} ${v.resource.name}:` : "";
    lines.push(`  ${v.level} [${v.policy}]${where} ${v.message}`);
  }
  return lines.join("\n");
}

export function renderMarkdown(report: CheckReport): string {
  const lines = [
    `### pg-tenants check: stack \`${report.stack}\` ${report.ok ? "passed" : "failed"}`,
    "",
    headline(report) + ".",
    "",
    "| Tenant | State | Cluster | Database | Roles | Key |",
    "| --- | --- | --- | --- | --- | --- |",
  ];
  for (const t of report.tenants) {
    for (const p of t.placements.length > 0 ? t.placements : [undefined]) {
      lines.push(
        `| ${escapeCell(`${t.id} (${t.displayName})`)} | ${escapeCell(stateText(t))} | ${p ? escapeCell(placementText(p)) : ""} | ${p ? `\`${p.database}\`` : ""} | ${p ? p.roles.map((r) => `\`${r}\``).join(", ") : ""} | \`${escapeCell(t.key)}\` |`,
      );
    }
  }
  if (report.changes !== undefined) {
    lines.push("", `#### Manifest changes against \`${report.changes.base}\``, "");
    const changes = changeLines(report.changes);
    if (changes.length === 0) {
      lines.push("No tenant added, changed or removed.");
    } else {
      lines.push("| Change | Tenant | Details |", "| --- | --- | --- |");
      for (const [kind, id, details] of changes)
        lines.push(`| ${kind} | ${id} | ${escapeCell(details)} |`);
    }
    if (report.changes.violations.length > 0) {
      lines.push("", "| Refused by | Tenant | Why |", "| --- | --- | --- |");
      for (const v of report.changes.violations)
        lines.push(`| ${v.rule} | ${v.tenant} | ${escapeCell(v.message)} |`);
    }
  }
  lines.push("", "#### Policy violations", "");
  if (report.violations.length === 0) {
    lines.push(`None: every policy of the \`${report.policies.pack}\` pack passed.`);
  } else {
    lines.push(
      "| Level | Policy | Tenant | Resource | Message |",
      "| --- | --- | --- | --- | --- |",
    );
    for (const v of report.violations) {
      lines.push(
        `| ${v.level} | ${v.policy} | ${v.tenant ?? ""} | ${v.resource !== undefined ? `\`${escapeCell(v.resource.name)}\`` : ""} | ${escapeCell(v.message)} |`,
      );
    }
  }
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// The command

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
  const violations = await runPolicies(
    registrations,
    mergePackConfig(stackPolicyConfig(cfg), options.packConfig ?? {}),
  );
  let changes: CheckReport["changes"];
  if (options.base !== undefined) {
    const head = readTenantFiles(path.resolve(options.root, cfg.tenantsDir), options.root);
    const base = readBaseFiles(options.base, cfg.tenantsDir, options.root);
    changes = {
      base: options.base,
      ...diffManifests(readManifestEntries(base), readManifestEntries(head)),
    };
  }
  const ok =
    violations.every((v) => v.level !== "mandatory") &&
    (changes === undefined || changes.violations.length === 0);
  return {
    stack,
    ok,
    manifestTenants: tenants.length,
    tenants: summarize(registrations, tenants),
    clusters: Object.keys(cfg.clusters),
    resources: registrations.length,
    policies: { pack: PACK_NAME, count: policies.length },
    violations,
    ...(changes !== undefined ? { changes } : {}),
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
