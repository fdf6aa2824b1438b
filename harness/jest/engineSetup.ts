import { buildEngine } from "../../tools/engine";
import { findEngine, goVersion } from "../../tools/lib/engine";
import { PROJECT_ROOT } from "../engine";

/**
 * Before the engine lane: an engine is found (npm run engine's, or a pulumi on PATH), or built
 * when Go is there (the first build takes several minutes; later runs reuse it), or the lane is
 * skipped with one line. PGTENANTS_ENGINE_LANE=skip skips it on purpose; =required (.ci/run)
 * never skips.
 */
export default async function engineSetup(): Promise<void> {
  const mode = process.env.PGTENANTS_ENGINE_LANE ?? "";
  if (mode === "skip" || findEngine(PROJECT_ROOT, process.env) !== undefined) return;
  if (goVersion(process.env) === undefined) {
    if (mode !== "required") {
      process.stdout.write(
        "engine lane skipped: no Pulumi engine and no Go to build one (install Go and run npm run engine, or install the Pulumi CLI)\n",
      );
    }
    return;
  }
  await buildEngine(PROJECT_ROOT, {
    out: (line) => process.stdout.write(`${line}\n`),
    env: process.env,
  });
}
