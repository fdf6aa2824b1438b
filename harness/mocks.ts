import * as pulumi from "@pulumi/pulumi";

/** One `newResource` call as the mock runtime saw it. */
export interface Registration {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  /** `urn::id` of the explicit or inherited provider, if any. */
  provider?: string;
  id: string;
}

/**
 * Mocks that record every registration, give random resources a value the way the real
 * provider would, and throw on any invoke: the program must not read from the cloud.
 */
export class RecordingMocks implements pulumi.runtime.Mocks {
  public readonly registrations: Registration[] = [];

  newResource(args: pulumi.runtime.MockResourceArgs): {
    id: string;
    state: Record<string, unknown>;
  } {
    const id = args.id && args.id !== "" ? args.id : `${args.name}-id`;
    this.registrations.push({
      type: args.type,
      name: args.name,
      inputs: args.inputs,
      provider: args.provider,
      id,
    });
    return { id, state: { ...args.inputs, ...mockedOutputs(args) } };
  }

  call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
    throw new Error(`unexpected invoke ${args.token}: the program must not read from providers`);
  }

  byType(type: string): Registration[] {
    return this.registrations.filter((r) => r.type === type);
  }

  named(name: string): Registration {
    const found = this.registrations.filter((r) => r.name === name);
    if (found.length !== 1)
      throw new Error(`expected one registration named ${name}, found ${found.length}`);
    return found[0];
  }
}

/**
 * Mocks for measurements: they count registrations and give resources the same fake outputs,
 * but keep nothing, so the figures are the program's and not the recorder's.
 */
export class CountingMocks implements pulumi.runtime.Mocks {
  public resources = 0;
  public readonly byType = new Map<string, number>();

  newResource(args: pulumi.runtime.MockResourceArgs): {
    id: string;
    state: Record<string, unknown>;
  } {
    this.resources++;
    this.byType.set(args.type, (this.byType.get(args.type) ?? 0) + 1);
    return { id: `${args.name}-id`, state: { ...args.inputs, ...mockedOutputs(args) } };
  }

  call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
    throw new Error(`unexpected invoke ${args.token}: the program must not read from providers`);
  }
}

/** The one table of outputs the real providers compute, as deterministic fake values. */
export function mockedOutputs(args: pulumi.runtime.MockResourceArgs): Record<string, unknown> {
  switch (args.type) {
    case "random:index/randomPassword:RandomPassword":
      return { result: `pw-${args.name}` };
    case "random:index/randomBytes:RandomBytes":
      return {
        base64: Buffer.from(`key-${args.name}`.padEnd(32, "k").slice(0, 32)).toString("base64"),
      };
    case "aws:kms/key:Key":
      return {
        keyId: `key-${args.name}`,
        arn: `arn:aws:kms:eu-west-1:123456789012:key/${args.name}`,
      };
    case "aws:kms/ciphertext:Ciphertext":
      return { ciphertextBlob: `ciphertext-of-${args.name}` };
    case "aws:secretsmanager/secret:Secret":
      return { arn: `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${args.name}` };
    default:
      return {};
  }
}

/** What a stack transform sees of one resource as the program registers it. */
export interface SeenResource {
  resource: pulumi.Resource;
  type: string;
  name: string;
  opts: pulumi.ResourceTransformationArgs["opts"];
}

/**
 * The one recorder of resource options: registers (in a run's `beforeRun`) a stack transform
 * that reports every resource to `onSeen` and changes none. Inputs are the mocks' to record.
 */
export function watchResources(onSeen: (seen: SeenResource) => void): void {
  pulumi.runtime.registerStackTransformation((args) => {
    onSeen({ resource: args.resource, type: args.type, name: args.name, opts: args.opts });
    return undefined;
  });
}

/** Resolves an Output (or plain value) under the mock runtime, with its secretness. */
export async function resolve<T>(value: pulumi.Input<T>): Promise<{ value: T; secret: boolean }> {
  const out = pulumi.output(value);
  const secret = await pulumi.isSecret(out);
  const v = await new Promise<T>((res) =>
    out.apply((x) => {
      res(x as T);
      return x;
    }),
  );
  return { value: v, secret };
}
