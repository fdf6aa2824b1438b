import type { Circus } from "@jest/types";
import { TestEnvironment } from "jest-environment-node";

/**
 * The engine lane's environment. The lane runs the program inline, in the test's process, as
 * the tools do, and two kinds of promise rejection reach no handler there by design:
 *
 * - "Resource monitor is terminating": registrations still in flight when the engine ends a run
 *   early (a resource failed, a cluster went away); the run has already failed with the
 *   engine's own error, which the test asserts, and the Pulumi runner ignores these
 *   (tools/lib/deploy.ts does too);
 * - an InputError the program threw (file, field, what is allowed): the engine reports it as the
 *   run's diagnostic, which the test asserts, and the runtime's stack outputs reject with it.
 *
 * jest fails a file on any unhandled rejection, from listeners on the real process that a test
 * cannot reach; once they are in place (circus's `setup`), they are wrapped so that these two are
 * dropped and every other rejection still reaches them. Errors come from the test's realm: they
 * are recognised by name and message, not by instanceof.
 */
type Listener = (reason: unknown, promise: Promise<unknown>) => void;

const expected = (reason: unknown): boolean => {
  if (typeof reason !== "object" || reason === null) return false;
  const { name, message } = reason as { name?: unknown; message?: unknown };
  return name === "InputError" || message === "Resource monitor is terminating";
};

export default class EngineEnvironment extends TestEnvironment {
  private filter?: Listener;

  async handleTestEvent(event: Circus.Event): Promise<void> {
    if (event.name === "setup" && this.filter === undefined) {
      const listeners = process.rawListeners("unhandledRejection") as Listener[];
      const filter: Listener = (reason, promise) => {
        if (expected(reason)) return;
        for (const listener of listeners) listener(reason, promise);
      };
      process.removeAllListeners("unhandledRejection");
      process.on("unhandledRejection", filter);
      this.filter = filter;
    } else if (event.name === "teardown" && this.filter !== undefined) {
      // circus has put the listeners from before the file back; the filter goes.
      process.removeListener("unhandledRejection", this.filter);
      this.filter = undefined;
    }
  }
}
