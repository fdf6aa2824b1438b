import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import {
  specialResourceSig,
  specialSecretSig,
  specialSigKey,
  unknownValue,
} from "@pulumi/pulumi/runtime/rpc";
import { PROJECT, StackConfig } from "../../infra/config";
import { TYPES } from "../../policy/tenancy";
import { evaluateProgram } from "../evaluate";
import { readStackFile } from "../stack";

// pg-tenants check (index.ts): What the program registers under the mock runtime, as the engine would see it.

/** Stands in for secrets the stack file holds encrypted: nothing connects during a check. */
export const PLACEHOLDER_SECRET = "placeholder-not-a-secret";

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
