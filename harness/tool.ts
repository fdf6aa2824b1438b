import { spawn } from "child_process";
import * as path from "path";

/** The repository root. */
export const ROOT = path.resolve(__dirname, "..");

/**
 * node's arguments that run a TypeScript tool as the npm scripts do: ts-node, which finds
 * tsconfig.json beside the script (its swc transpiler, no type check) whatever the working
 * directory. `preload` modules are required first (node's `-r`).
 */
export function tsNodeArgs(
  script: string,
  args: readonly string[],
  preload: string[] = [],
): string[] {
  const bin = require.resolve("ts-node/dist/bin.js");
  return [bin, ...preload.flatMap((p) => ["-r", p]), script, ...args];
}

/** node's arguments that run `pg-tenants <args>` as a user does (bin/pg-tenants.js). */
export function cliArgs(args: readonly string[]): string[] {
  return [path.join(ROOT, "bin", "pg-tenants.js"), ...args];
}

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs node with `args` to its end without blocking the test's event loop; output collected. */
export function runNode(
  args: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<Ran> {
  return new Promise<Ran>((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd, env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
