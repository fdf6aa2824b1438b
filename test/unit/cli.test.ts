import assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "@jest/globals";
import { cliArgs, ROOT } from "../../harness/tool";
import {
  CommandError,
  CommandIo,
  ensureParent,
  findTenant,
  loadContext,
  readCommandArgs,
  UsageError,
} from "../../tools/lib/cli";
import { main as offboard } from "../../tools/offboard";
import { COMMANDS, usageLine } from "../../tools/commands";

/** `pg-tenants <args>` as a user runs it, without a terminal. */
function cli(...args: string[]) {
  const r = spawnSync(process.execPath, cliArgs(args), { cwd: ROOT, encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("pg-tenants", () => {
  it("--help lists every command, the exit codes, and exits 0", () => {
    const { status, stdout, stderr } = cli("--help");
    assert.equal(status, 0);
    assert.equal(stderr, "");
    const listed = stdout
      .split("\n")
      .filter((l) => /^ {2}[a-z]/.test(l))
      .map((l) => l.trim().split(" ")[0]);
    assert.deepEqual(
      listed.filter((n) => n !== "-h,"),
      COMMANDS.map((c) => c.name),
    );
    assert.match(stdout, /Exit codes: 0 done, 1 failed or violations found, 2 bad usage or input/);
  });

  it("each command's --help lists its options with their defaults, exit 0", () => {
    const { status, stdout } = cli("audit", "--help");
    assert.equal(status, 0);
    assert.match(stdout, /^Usage: pg-tenants audit \[options\]$/m);
    assert.match(stdout, /--stack <name> +stack to act on \(stacks\/Pulumi\.<name>\.yaml\)/);
    assert.match(stdout, /\(default: "local"\)/);
    assert.match(stdout, /--format <text\|json\|markdown>/);
    assert.match(stdout, /--pool <connections per cluster>/);
  });

  it("refuses bad usage with exit 2 and one error line, loading no command", () => {
    for (const [args, message] of [
      [["audit", "--nope"], "error: unknown option '--nope'"],
      [
        ["audit", "extra"],
        "error: too many arguments for 'audit'. Expected 0 arguments but got 1.",
      ],
      [["move"], "error: missing required argument 'tenant'"],
      [["hba", "--stack", "local"], "error: required option '--out <dir>' not specified"],
      [["nope"], "error: unknown command 'nope'"],
    ] as const) {
      const { status, stdout, stderr } = cli(...args);
      assert.equal(status, 2, args.join(" "));
      assert.equal(stdout, "");
      assert.equal(stderr.split("\n")[0], message);
    }
  });

  it("without a command prints the command list on stderr and exits 2", () => {
    const { status, stdout, stderr } = cli();
    assert.equal(status, 2);
    assert.equal(stdout, "");
    assert.match(stderr, /^Usage: pg-tenants <command> \[options\]/);
  });

  it("prints no colour codes when stderr is not a terminal", () => {
    const { stderr } = cli("audit", "--nope");
    assert.equal(stderr.includes("\x1b["), false);
  });

  it("runs the command's module: schema --check exits 0 on the committed schema", () => {
    const { status, stdout } = cli("schema", "--check");
    assert.equal(status, 0);
    assert.equal(stdout, "tenants/tenant.schema.json is up to date\n");
  });
});

describe("the command table", () => {
  it("spells --stack the same on every stack command, defaulting to local", () => {
    const stackCommands = COMMANDS.filter((c) => "stack" in c.options);
    const names = stackCommands.map((c) => c.name);
    for (const name of ["check", "hba", "audit", "move", "offboard", "backup", "restore"]) {
      assert.ok(names.includes(name), `${name} takes --stack`);
    }
    for (const c of stackCommands.filter((c) => c.name !== "affected")) {
      assert.deepEqual(c.options.stack, {
        type: "string",
        value: "<name>",
        default: "local",
        description: "stack to act on (stacks/Pulumi.<name>.yaml)",
      });
    }
    // affected filters its output: repeatable, no default (every stack).
    assert.equal(COMMANDS.find((c) => c.name === "affected")?.options.stack.multiple, true);
  });

  it("renders the usage line the tools print", () => {
    const line = (name: string) => usageLine(COMMANDS.find((c) => c.name === name)!);
    assert.equal(line("hba"), "pg-tenants hba [--stack <name>] --out <dir>");
    assert.equal(
      line("restore"),
      "pg-tenants restore <tenant> <dump> [--stack <name>] [--without-manifest]",
    );
    assert.equal(
      line("affected"),
      "pg-tenants affected --base <git ref> [--stack <name>]... [--allow-moves]",
    );
  });

  it("reads a tool's arguments: defaults, flags, repeats; refuses extra and missing ones", () => {
    const move = readCommandArgs(["acme", "--wait", "5"], "move");
    // parseArgs returns arrays of the outer realm: compared with expect, as in workflows.test.ts.
    expect(move.positionals).toEqual(["acme"]);
    assert.equal(move.value("stack"), "local");
    assert.equal(move.value("wait"), "5");
    const affected = readCommandArgs(
      ["--base", "HEAD", "--stack", "a", "--stack", "b"],
      "affected",
    );
    expect(affected.list("stack")).toEqual(["a", "b"]);
    assert.equal(affected.flag("allow-moves"), false);
    const usage = "\nusage: pg-tenants move <tenant> [--stack <name>] [--wait <seconds>]";
    assert.throws(() => readCommandArgs([], "move"), new UsageError(`missing tenant${usage}`));
    assert.throws(
      () => readCommandArgs(["acme", "globex"], "move"),
      new UsageError(`unexpected argument "globex"${usage}`),
    );
    assert.throws(
      () => readCommandArgs(["acme", "--force"], "move"),
      new UsageError(
        `Unknown option '--force'. To specify a positional argument starting with a '-', place it at the end of the command after '--', as in '-- "--force"${usage}`,
      ),
    );
  });
});

describe("day-two commands act on their stack's shard only", () => {
  const root = process.cwd();
  const refusal = (stack: string, id: string) => {
    try {
      findTenant(loadContext(stack, root), id);
    } catch (e) {
      assert.ok(e instanceof CommandError, String(e));
      return e.message;
    }
    return undefined;
  };

  it("finds a tenant of the stack's shard, and every tenant on an unsharded stack", () => {
    assert.equal(findTenant(loadContext("production-1", root), "acme").model.id, "acme");
    assert.equal(findTenant(loadContext("production", root), "globex").model.id, "globex");
    for (const id of ["acme", "globex", "initech"])
      assert.equal(findTenant(loadContext("local", root), id).model.id, id);
  });

  it("refuses a tenant of another shard, naming the stack that declares it", () => {
    assert.equal(
      refusal("production", "acme"),
      "tenant acme is not in stack production's shard: stack production-1 declares it; run the command with --stack production-1",
    );
    assert.equal(
      refusal("production-1", "globex"),
      "tenant globex is not in stack production-1's shard: stack production declares it; run the command with --stack production",
    );
  });

  it("says so when no stack of the deployment declares the tenant", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-shard-"));
    try {
      fs.mkdirSync(path.join(dir, "stacks"));
      fs.copyFileSync(
        path.join(root, "stacks", "Pulumi.production-1.yaml"),
        path.join(dir, "stacks", "Pulumi.production-1.yaml"),
      );
      fs.cpSync(path.join(root, "tenants"), path.join(dir, "tenants"), { recursive: true });
      assert.throws(
        () => findTenant(loadContext("production-1", dir), "initech"),
        new CommandError(
          "tenant initech is not in stack production-1's shard: no stack of this deployment declares it",
        ),
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a purge on the wrong stack stops there and prints no state delete for it", async () => {
    const lines: string[] = [];
    const errors: string[] = [];
    const io: CommandIo = {
      root,
      out: (l) => lines.push(l),
      err: (l) => errors.push(l),
      env: {},
      now: () => new Date("2030-01-01T00:00:00Z"),
    };
    assert.equal(
      await offboard(["globex", "--stack", "production-1", "--purge", "--confirm", "globex"], io),
      1,
    );
    assert.deepEqual(lines, []);
    assert.deepEqual(errors, [
      "error: tenant globex is not in stack production-1's shard: stack production declares it; run the command with --stack production",
    ]);
  });
});

describe("backup folders", () => {
  it("are created readable by their owner only", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-parent-"));
    try {
      ensureParent(path.join(dir, "backups", "acme", "acme.dump"));
      assert.equal(fs.statSync(path.join(dir, "backups")).mode & 0o777, 0o700);
      assert.equal(fs.statSync(path.join(dir, "backups", "acme")).mode & 0o777, 0o700);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
