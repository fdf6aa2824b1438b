import { describe, expect, it } from "@jest/globals";
import assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { engineParallel } from "../../tools/lib/deploy";
import { loadStack, listStacks, readStackFile } from "../../tools/stack";

/**
 * The CI workflows, read as GitHub reads them: every command they run exists, they hold only
 * the permissions they need, deployments of a stack never overlap, and the policy pack they
 * pass to Pulumi is the one in this repository.
 */

const ROOT = path.resolve(__dirname, "..", "..");
const DIR = path.join(ROOT, ".github", "workflows");

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
  "working-directory"?: string;
}
interface Job {
  needs?: string | string[];
  if?: string;
  permissions?: Record<string, string>;
  concurrency?: { group: string; "cancel-in-progress": boolean };
  strategy?: { matrix: Record<string, unknown> };
  steps: Step[];
}
interface Workflow {
  on: Record<string, unknown>;
  permissions: Record<string, string>;
  jobs: Record<string, Job>;
}

const files = fs
  .readdirSync(DIR)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();
const workflows: Record<string, Workflow> = Object.fromEntries(
  files.map((f) => [f, parse(fs.readFileSync(path.join(DIR, f), "utf8")) as Workflow]),
);
const scripts = (
  JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
    scripts: Record<string, string>;
  }
).scripts;

const steps = (w: Workflow) => Object.values(w.jobs).flatMap((j) => j.steps);
const runs = (w: Workflow) => steps(w).flatMap((s) => (s.run === undefined ? [] : [s.run]));
const pulumiSteps = (job: Job) => job.steps.filter((s) => s.uses?.startsWith("pulumi/actions@"));

/** The job that runs `pulumi <command>`, asserting there is exactly one. */
function pulumiJob(w: Workflow, command: string): [string, Job, Step] {
  const found = Object.entries(w.jobs).flatMap(([name, job]) =>
    pulumiSteps(job)
      .filter((s) => s.with?.command === command)
      .map((s): [string, Job, Step] => [name, job, s]),
  );
  assert.equal(found.length, 1, `one pulumi ${command} step`);
  return found[0];
}

describe("CI workflows", () => {
  it("are the pull-request gate, the deployment and the nightly audit", () => {
    // fs returns arrays of the outer realm, which node:assert's strict mode tells apart from jest's.
    expect(files).toEqual(["audit.yml", "deploy.yml", "pull-request.yml"]);
    assert.deepEqual(Object.keys(workflows["pull-request.yml"].on), ["pull_request"]);
    assert.deepEqual(workflows["deploy.yml"].on, { push: { branches: ["main"] } });
    assert.ok(Array.isArray(workflows["audit.yml"].on.schedule));
  });

  it("run only npm scripts that package.json defines", () => {
    const used = new Set<string>();
    // The workflows' steps and the CI entry point the verify job runs.
    const ci = fs.readFileSync(path.join(ROOT, ".ci", "run"), "utf8");
    for (const w of Object.values(workflows)) {
      for (const run of [...runs(w), ci]) {
        // `npm test` is `npm run test`.
        for (const m of run.matchAll(/npm (?:run (?:--silent |-s )?([\w:-]+)|(test)\b)/g))
          used.add(m[1] ?? m[2]);
      }
    }
    assert.deepEqual([...used].sort(), [
      "affected",
      "audit",
      "check",
      "engine",
      "format:check",
      "lint",
      "migrate",
      "test",
      "typecheck",
    ]);
    for (const script of used)
      assert.ok(script in scripts, `npm run ${script} is not a script of package.json`);
  });

  it("run shell scripts bash can parse, with expressions passed through env, never inlined", () => {
    for (const [file, w] of Object.entries(workflows)) {
      for (const run of runs(w)) {
        assert.ok(!run.includes("${{"), `${file}: pass expressions through env: ${run}`);
        const parsed = spawnSync("bash", ["-n", "-c", run], { encoding: "utf8" });
        assert.equal(parsed.status, 0, `${file}: ${parsed.stderr}\n${run}`);
      }
    }
  });

  it("install the project and the policy pack (pulumi/actions installs nothing)", () => {
    for (const [file, w] of Object.entries(workflows)) {
      for (const [name, job] of Object.entries(w.jobs)) {
        if (pulumiSteps(job).length === 0) continue;
        const commands = job.steps.flatMap((s) => (s.run === undefined ? [] : [s.run.trim()]));
        assert.ok(commands.includes("npm ci --no-audit --no-fund"), `${file} ${name}: npm ci`);
        assert.ok(
          commands.includes("npm ci --no-audit --no-fund --prefix policy"),
          `${file} ${name}: npm ci in policy/`,
        );
      }
    }
  });

  it("give every pulumi step this repository's policy pack", () => {
    assert.ok(fs.existsSync(path.join(ROOT, "policy", "PulumiPolicy.yaml")));
    for (const [file, w] of Object.entries(workflows)) {
      for (const job of Object.values(w.jobs)) {
        for (const step of pulumiSteps(job)) {
          assert.equal(step.uses, "pulumi/actions@v7", file);
          assert.equal(
            step.with?.policyPacks,
            "policy",
            `${file}: pulumi ${String(step.with?.command)}`,
          );
          assert.equal(step.with?.["stack-name"], "${{ matrix.stack }}", file);
          // Below every deployable stack's provider pool (tools/lib/deploy.ts engineParallel).
          for (const stack of ["production", "production-1"]) {
            const bound = engineParallel(readStackFile(stack, ROOT).raw);
            assert.ok(Number(step.with?.parallel) <= bound, `${file}: parallel over ${bound}`);
          }
        }
      }
    }
  });

  it("gate a pull request: lint, tests, the offline check in the summary, then a commented preview", () => {
    const w = workflows["pull-request.yml"];
    // The verify job runs the CI entry point, which runs the checks and the tests.
    const verify = runs({ ...w, jobs: { verify: w.jobs.verify } });
    assert.deepEqual(verify, [".ci/run"]);
    const ci = fs.readFileSync(path.join(ROOT, ".ci", "run"), "utf8");
    for (const command of ["npm run engine", "npm run typecheck", "npm run lint", "npm test"])
      assert.ok(ci.split("\n").includes(command), command);
    const affected = w.jobs.affected.steps.find((s) =>
      s.run?.includes("npm run --silent affected -- --base"),
    );
    assert.ok(affected?.run?.includes('"origin/$BASE_REF"'));
    assert.equal(affected?.env?.BASE_REF, "${{ github.base_ref }}");

    const check = w.jobs.check;
    assert.deepEqual(check.strategy?.matrix, {
      stack: "${{ fromJSON(needs.affected.outputs.stacks) }}",
    });
    const checkRun = check.steps
      .map((s) => s.run ?? "")
      .find((r) => r.includes("npm run --silent check"));
    assert.equal(
      checkRun?.trim(),
      'npm run --silent check -- --stack "$STACK" --format markdown --base "origin/$BASE_REF" | tee -a "$GITHUB_STEP_SUMMARY"',
    );

    const [name, preview, step] = pulumiJob(w, "preview");
    assert.equal(name, "preview");
    assert.equal(step.with?.["comment-on-pr"], true);
    assert.deepEqual(preview.permissions, {
      contents: "read",
      "pull-requests": "write",
      "id-token": "write",
    });
    assert.deepEqual(preview.needs, ["verify", "affected", "check"]);
    assert.deepEqual(preview.strategy?.matrix, {
      stack: "${{ fromJSON(needs.affected.outputs.deployable) }}",
    });
    assert.match(
      preview.if ?? "",
      /github\.event\.pull_request\.head\.repo\.full_name == github\.repository/,
    );
  });

  it("deploy each affected stack with a refresh first, never two runs of one stack at once", () => {
    const w = workflows["deploy.yml"];
    const [, up, step] = pulumiJob(w, "up");
    assert.equal(step.with?.refresh, true);
    assert.deepEqual(up.concurrency, {
      group: "deploy-${{ matrix.stack }}",
      "cancel-in-progress": false,
    });
    assert.deepEqual(up.strategy?.matrix, {
      stack: "${{ fromJSON(needs.affected.outputs.deployable) }}",
    });
    assert.deepEqual(up.permissions, { contents: "read", "id-token": "write" });
    assert.ok(runs(w).some((r) => r.includes('npm run --silent affected -- --base "$BEFORE"')));
    const order = up.steps.map((s) => s.uses ?? s.run ?? "");
    assert.ok(
      order.findIndex((s) => s.includes("npm run --silent check")) <
        order.indexOf("pulumi/actions@v7"),
      "the offline check runs before pulumi up",
    );
    // The template version new tenants clone from exists before the up; the fleet follows it.
    const templates = order.findIndex((s) => s.includes('migrate -- --stack "$STACK" --templates'));
    const migrate = order.findIndex((s) => s.includes("--canary 1"));
    assert.ok(templates >= 0 && templates < order.indexOf("pulumi/actions@v7"));
    assert.ok(migrate > order.indexOf("pulumi/actions@v7"));
    assert.equal(
      up.steps[migrate].run?.trim(),
      'npm run --silent migrate -- --stack "$STACK" --canary 1 --wave-size 50 --format markdown | tee -a "$GITHUB_STEP_SUMMARY"',
    );
    for (const i of [templates, migrate]) {
      for (const tier of ["STANDARD", "PREMIUM"]) {
        const name = `PGTENANTS_PASSWORD_${tier}`;
        assert.equal(up.steps[i].env?.[name], `\${{ secrets.${name} }}`, name);
      }
    }
  });

  it("audit every deployed stack nightly, with a password secret for each of its clusters", () => {
    const w = workflows["audit.yml"];
    const audit = w.jobs.audit.steps.find((s) => s.run?.includes("npm run --silent audit"));
    assert.equal(
      audit?.run?.trim(),
      'npm run --silent audit -- --stack "$STACK" --format markdown | tee -a "$GITHUB_STEP_SUMMARY"',
    );
    const tiers = new Set(
      listStacks(ROOT)
        .filter((s) => s !== "local")
        .flatMap((s) => Object.keys(loadStack(s, ROOT).clusters)),
    );
    for (const tier of tiers) {
      const name = `PGTENANTS_PASSWORD_${tier.toUpperCase()}`;
      assert.equal(audit?.env?.[name], `\${{ secrets.${name} }}`, name);
    }
    const [, drift, step] = pulumiJob(w, "preview");
    assert.equal(step.with?.refresh, true);
    assert.equal(step.with?.["expect-no-changes"], true);
    assert.equal(drift.concurrency?.group, "audit-${{ matrix.stack }}");
  });

  it("hold read-only repository access by default and use only the documented secrets", () => {
    const secrets = new Set<string>();
    for (const [file, w] of Object.entries(workflows)) {
      assert.deepEqual(w.permissions, { contents: "read" }, file);
      const text = fs.readFileSync(path.join(DIR, file), "utf8");
      for (const m of text.matchAll(/secrets\.(\w+)/g)) secrets.add(m[1]);
      for (const job of Object.values(w.jobs)) {
        for (const step of job.steps) {
          if (step.uses !== undefined)
            assert.match(step.uses, /^[\w-]+\/[\w-]+@v\d+$/, `${file}: ${step.uses}`);
        }
      }
    }
    assert.deepEqual([...secrets].sort(), [
      "AWS_ROLE_ARN",
      "GITHUB_TOKEN",
      "PGTENANTS_PASSWORD_PREMIUM",
      "PGTENANTS_PASSWORD_STANDARD",
      "PULUMI_ACCESS_TOKEN",
    ]);
  });
});
