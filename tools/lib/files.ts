import * as path from "path";
import { outputPathProblem } from "../../infra/files";
import { UsageError } from "./cli";

/** The absolute path of a file a command writes where an option names it; refused where it cannot be a file. */
export function safeOutputPath(root: string, file: string, option: string): string {
  const abs = path.resolve(root, file);
  const problem = outputPathProblem(abs);
  if (problem !== undefined) throw new UsageError(`${option} ${file} ${problem}`);
  return abs;
}
