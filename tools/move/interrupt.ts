import type { Client } from "pg";
import { CommandError, CommandIo } from "../lib/cli";
import type { MoveRow } from "./journal";
import { resumeHint, stateReport } from "./messages";

/**
 * Interrupting a move: SIGINT and SIGTERM while it runs, the failpoints its tests stop it at, and
 * the run's state both report from.
 */

/** What the run is doing, for the message an interruption prints. */
export interface RunState {
  id: string;
  from: string;
  to: string;
  file: string;
  row?: MoveRow;
  /** Connections whose work an interruption cuts short (the copy's two sessions). */
  cut: Set<Client>;
  interrupted?: NodeJS.Signals;
}

/**
 * Fault injection for the tests of interrupted moves (`PGTENANTS_FAILPOINT=move:<name>`): the run
 * stops at that point and waits to be killed or interrupted, saying so on stderr.
 */
export const FAILPOINTS = ["frozen", "loading", "loaded", "copied", "closed"] as const;
export type Failpoint = (typeof FAILPOINTS)[number];
const FAILPOINT_ENV = "PGTENANTS_FAILPOINT";

/**
 * While a move runs, SIGINT and SIGTERM stop it: the copy's connections are cut (the target's
 * transaction rolls back) and, before the source is closed, the source is given back. A second
 * signal ends the process at once; the journal keeps the state for the next run.
 */
export function onInterrupt(state: RunState, io: CommandIo): () => void {
  const handler = (signal: NodeJS.Signals) => {
    if (state.interrupted !== undefined) {
      io.err(
        `error: interrupted again (${signal}): stopping now. ${state.row !== undefined ? `${stateReport(state.row, state.file)} ${resumeHint(state.row)}` : "nothing was changed"}`,
      );
      process.removeListener("SIGINT", handler);
      process.removeListener("SIGTERM", handler);
      process.kill(process.pid, signal);
      return;
    }
    state.interrupted = signal;
    io.progress?.(`move: ${signal}: stopping (a second ${signal} stops at once)`);
    for (const c of state.cut) {
      (
        c as unknown as { connection?: { stream?: { destroy(): void } } }
      ).connection?.stream?.destroy();
    }
    for (const w of waiting) w();
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return () => {
    process.removeListener("SIGINT", handler);
    process.removeListener("SIGTERM", handler);
  };
}

const waiting = new Set<() => void>();

/** Stops at a failpoint the environment names until the run is interrupted. */
export async function failpoint(name: Failpoint, io: CommandIo): Promise<void> {
  if (io.env[FAILPOINT_ENV] !== `move:${name}`) return;
  io.err(`failpoint move:${name} reached`);
  await new Promise<void>((resolve) => {
    const done = () => {
      waiting.delete(done);
      resolve();
    };
    waiting.add(done);
  });
}

/** Stops the run where it stands when it was interrupted. */
export function checkInterrupted(state: RunState): void {
  if (state.interrupted !== undefined) throw new CommandError(`interrupted (${state.interrupted})`);
}
