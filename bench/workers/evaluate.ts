import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { performance } from "perf_hooks";
import * as pulumi from "@pulumi/pulumi";
import { PROJECT } from "../../infra/config";
import { evaluateProgram } from "../../tools/evaluate";
import { readStackFile } from "../../tools/stack";
import { benchBudget } from "../support/budget";
import { CountingMocks } from "../../harness/mocks";
import { tenantYaml } from "../../harness/tenantFiles";
import { runWorker } from "../support/worker";

/**
 * One measurement, in a process of its own (so peak RSS is this run's alone): evaluates a
 * program under the mock runtime for N generated tenants and prints one JSON line.
 * Argument: JSON `{ "program": "pg-tenants" | "baseline", "tenants": N }`.
 */
export interface EvaluateJob {
  program: "pg-tenants" | "baseline";
  tenants: number;
}

export interface EvaluateResult {
  /** Loading the program's modules (compiling them, under ts-node). */
  loadMs: number;
  /** Declaring every resource and waiting until each has registered. */
  evalMs: number;
  /** CPU time (user + system) of that evaluation: steadier than wall time on a busy machine. */
  evalCpuMs: number;
  /** Peak resident set size of the process, in kB. */
  maxRssKb: number;
  resources: number;
  tenants: number;
}

const TIERS = ["standard", "premium"];

function writeTenants(n: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pg-tenants-bench-"));
  for (let i = 0; i < n; i++) {
    const id = `customer_${String(i).padStart(5, "0")}`;
    fs.writeFileSync(
      path.join(dir, `${id}.yaml`),
      tenantYaml({ id, tier: TIERS[i % 2], displayName: `Customer ${i}` }),
    );
  }
  return dir;
}

async function run(job: EvaluateJob): Promise<EvaluateResult> {
  const dir = writeTenants(job.tenants);
  const mocks = new CountingMocks();
  const root = path.join(__dirname, "..", "..");
  try {
    const loadStart = performance.now();
    const entry =
      job.program === "pg-tenants"
        ? path.join(root, "infra")
        : path.join(root, "bench", "baseline");
    /* eslint-disable @typescript-eslint/no-require-imports -- modules are loaded, and timed, at run time */
    if (job.program === "pg-tenants") require(entry);
    else {
      // The baseline declares at load time: load only its dependencies here.
      require("@pulumi/postgresql");
      require("yaml");
    }
    /* eslint-enable @typescript-eslint/no-require-imports */
    const loadMs = performance.now() - loadStart;

    const evalStart = performance.now();
    const cpuStart = process.cpuUsage();
    if (job.program === "pg-tenants") {
      const file = readStackFile("local", process.cwd());
      await evaluateProgram({
        stack: "local",
        config: {
          ...file.raw,
          ...benchBudget(file.raw),
          tenantsDir: dir,
          clusterPasswords: { standard: "bench", premium: "bench" },
        },
        otherConfig: file.other,
        mocks,
      });
    } else {
      pulumi.runtime.setAllConfig({ [`${PROJECT}:tenantsDir`]: dir });
      await pulumi.runtime.setMocks(mocks, PROJECT, "bench", false);
      await pulumi.runtime.runInPulumiStack(async () => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        require(entry);
        return {};
      });
      await pulumi.runtime.disconnect();
    }
    const evalMs = performance.now() - evalStart;
    const cpu = process.cpuUsage(cpuStart);
    const evalCpuMs = (cpu.user + cpu.system) / 1000;
    return {
      loadMs,
      evalMs,
      evalCpuMs,
      maxRssKb: process.resourceUsage().maxRSS,
      resources: mocks.resources,
      tenants: job.tenants,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

runWorker<EvaluateJob, unknown>(__filename, run);
