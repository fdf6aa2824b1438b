import * as pulumi from "@pulumi/pulumi";
import { mockedOutputs } from "../../test/support/mocks";

/**
 * Mocks for measurements: they count registrations and give random resources a value, like the
 * real providers, but keep nothing, so the figures are the program's and not the recorder's.
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
