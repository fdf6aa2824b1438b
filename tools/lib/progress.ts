/**
 * Progress of long work (audit, move, backup) on stderr, so stdout keeps only the result (a
 * `--format json` report stays parseable). On a terminal one status line is rewritten in place
 * and cleared before any other output; elsewhere (CI, pipes, files) each step is a plain line.
 */
export interface Progress {
  /** Shows a step of the work. */
  step(message: string): void;
  /** Removes the status line, if one is shown; called before other output. */
  clear(): void;
}

const CLEAR_LINE = "\r\x1b[2K";

export function progressOn(stream: NodeJS.WriteStream): Progress {
  if (stream.isTTY !== true) {
    return { step: (message) => void stream.write(`${message}\n`), clear: () => undefined };
  }
  let shown = false;
  const width = () => Math.max(20, (stream.columns ?? 80) - 1);
  return {
    step(message) {
      stream.write(`${CLEAR_LINE}${message.slice(0, width())}`);
      shown = true;
    },
    clear() {
      if (shown) stream.write(CLEAR_LINE);
      shown = false;
    },
  };
}

/** Colour only on a terminal, and never with NO_COLOR set (https://no-color.org). */
export function useColour(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv): boolean {
  return stream.isTTY === true && (env.NO_COLOR ?? "") === "";
}

/** `error:` in red where colour is on; the rest of the line as it is. */
export function colourError(line: string, colour: boolean): string {
  return colour && line.startsWith("error:") ? `\x1b[31merror:\x1b[39m${line.slice(6)}` : line;
}
