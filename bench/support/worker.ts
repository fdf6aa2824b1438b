import * as path from "path";

/**
 * The entry point of a measuring worker: run directly (or through a launcher such as
 * ts-node.ts or runner.ts that sets argv[1] to the worker's file), it takes its job as JSON in
 * argv[2] and prints its result as one JSON line on stdout, so each figure comes from a fresh
 * process with its own peak memory.
 */
export function runWorker<Job, Result>(file: string, run: (job: Job) => Promise<Result>): void {
  if (path.resolve(process.argv[1] ?? "") !== file) return;
  run(JSON.parse(process.argv[2]) as Job).then(
    (r) => {
      process.stdout.write(JSON.stringify(r) + "\n");
      process.exit(0);
    },
    (e: unknown) => {
      console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
      process.exit(1);
    },
  );
}
