import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { parseStackConfig, PROJECT, stackFile } from "../infra/config";
import { tenantLogicalName } from "../infra/naming";
import { InputError } from "../infra/issues";
import {
  deployments,
  ShardedStack,
  ShardMove,
  shardMoves,
  ShardTenant,
  tenantsOfShard,
} from "../infra/shards";
import { listStacks, readStackFile } from "./stack";
import { CommandArgs, EXIT, readCommandArgs } from "./lib/cli";

/**
 * `npm run affected -- --base <git ref>`: the stacks a change touches, as a JSON array on
 * stdout, for a CI matrix. A stack is affected when its stack file changed, when a tenant file
 * its shard contains (before or after the change) was added, modified or removed, or when the
 * program itself changed (then every stack is). A change of shard settings that moves tenants
 * between stacks is refused (exit 2) unless `--allow-moves` says their state was moved first.
 */

/** Files whose change alters every stack's program: the program, its dependencies, the project. */
export const PROGRAM_PATHS = [
  /^infra\//,
  // The gate itself: a change to a policy or to the check must be checked on every stack.
  /^policy\//,
  /^tools\/check\//,
  /^tools\/(evaluate|stack)\.ts$/,
  /^Pulumi\.yaml$/,
  /^package(-lock)?\.json$/,
  /^tsconfig(\.build)?\.json$/,
];

export interface ChangedFile {
  /** Path relative to the repository root, with forward slashes. */
  path: string;
  status: "added" | "modified" | "removed";
}

/** One side of the comparison: the stacks and, per tenants folder, the tenants (id and tier). */
export interface Side {
  stacks: readonly ShardedStack[];
  tenants: ReadonlyMap<string, readonly TenantRef[]>;
}

export interface TenantRef extends ShardTenant {
  /** The tenant file, relative to the repository root. */
  file: string;
}

export interface Affected {
  /** Stack names, sorted. */
  stacks: string[];
  /** Tenants whose stack changes; each needs `pulumi state move` before the change is applied. */
  moves: ShardMove[];
}

const normalize = (p: string) => path.posix.normalize(p.replace(/\\/g, "/")).replace(/\/$/, "");

/** Pure: the stacks of `head` that the changed files touch, and the tenants that change stacks. */
export function affectedStacks(changes: readonly ChangedFile[], base: Side, head: Side): Affected {
  const headNames = new Set(head.stacks.map((s) => s.stack));
  const result = new Set<string>();

  if (changes.some((c) => PROGRAM_PATHS.some((re) => re.test(c.path)))) {
    for (const s of head.stacks) result.add(s.stack);
  }
  for (const c of changes) {
    const m = /^stacks\/Pulumi\.(.+)\.yaml$/.exec(c.path);
    if (m && headNames.has(m[1])) result.add(m[1]);
  }

  const changedPaths = new Set(changes.map((c) => c.path));
  for (const side of [base, head]) {
    for (const s of side.stacks) {
      if (!headNames.has(s.stack)) continue;
      const touched = (side.tenants.get(normalize(s.tenantsDir)) ?? []).filter((t) =>
        changedPaths.has(t.file),
      );
      if (tenantsOfShard(s, touched).length > 0) result.add(s.stack);
    }
  }

  // Moves are looked for within each deployment (the stacks sharing clusters), as it was and is.
  const moves: ShardMove[] = [];
  const baseGroups = deployments(base.stacks);
  for (const after of deployments(head.stacks)) {
    const names = new Set(after.map((s) => s.stack));
    const before = baseGroups.filter((g) => g.some((s) => names.has(s.stack))).flat();
    const dir = normalize(after[0].tenantsDir);
    const existedBefore = new Set((base.tenants.get(dir) ?? []).map((t) => t.id));
    const tenants = (head.tenants.get(dir) ?? []).filter((t) => existedBefore.has(t.id));
    moves.push(...shardMoves(before, after, tenants));
  }
  return { stacks: [...result].sort(), moves };
}

/** Reads id and tier of every tenant file in a folder, leniently: validation is the check's job. */
export function readTenantRefs(dir: string, root: string): TenantRef[] {
  const abs = path.resolve(root, dir);
  if (!fs.existsSync(abs)) return [];
  return fs
    .readdirSync(abs)
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()
    .map((name) =>
      tenantRef(
        normalize(path.posix.join(dir, name)),
        fs.readFileSync(path.join(abs, name), "utf8"),
      ),
    );
}

function tenantRef(file: string, text: string): TenantRef {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch {
    doc = undefined;
  }
  const fields = (doc ?? {}) as { id?: unknown; tier?: unknown };
  return {
    file,
    id:
      typeof fields.id === "string" ? fields.id : path.posix.basename(file).replace(/\.ya?ml$/, ""),
    tier: typeof fields.tier === "string" ? fields.tier : "",
  };
}

function git(args: string[], cwd: string): string {
  try {
    return execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e as { stderr?: string; code?: string };
    if (err.code === "ENOENT")
      throw new Error("git is not installed: npm run affected needs it to compare with --base");
    throw new Error(`git ${args.join(" ")} failed: ${(err.stderr ?? String(e)).trim()}`);
  }
}

/** Files changed since the merge base of `base` and HEAD, including uncommitted and untracked ones. */
export function changedFiles(base: string, root: string): ChangedFile[] {
  const mergeBase = git(["merge-base", base, "HEAD"], root).trim();
  const out: ChangedFile[] = [];
  for (const line of git(["diff", "--name-status", "--no-renames", mergeBase, "--"], root).split(
    "\n",
  )) {
    const [status, file] = line.split("\t");
    if (!file) continue;
    out.push({
      path: normalize(file),
      status: status === "A" ? "added" : status === "D" ? "removed" : "modified",
    });
  }
  for (const file of git(["ls-files", "--others", "--exclude-standard"], root).split("\n")) {
    if (file) out.push({ path: normalize(file), status: "added" });
  }
  return out;
}

/** Stacks as they are in the working tree. Every stack file must be valid. */
function headSide(root: string): Side {
  const stacks = listStacks(root).map((s) => parseStackConfig(s, readStackFile(s, root).raw));
  return { stacks, tenants: tenantsOf(stacks, (dir) => readTenantRefs(dir, root)) };
}

/**
 * Stacks and tenants as they were at `ref`: stack files are parsed with the same parser (an
 * invalid one there is skipped: it deployed nothing), tenant files changed since then are read
 * from `ref`, and the others are as in the working tree.
 */
function baseSide(ref: string, root: string, changes: readonly ChangedFile[], head: Side): Side {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pg-tenants-affected-"));
  try {
    // No stacks/ folder at the base: every stack is new.
    const listing = git(["ls-tree", "--name-only", ref, "stacks/"], root).replace(
      /^stacks\//gm,
      "",
    );
    const names = listing
      .split("\n")
      .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
      .filter((s): s is string => s !== undefined);
    fs.mkdirSync(path.join(tmp, "stacks"));
    const stacks: ShardedStack[] = [];
    for (const name of names) {
      fs.writeFileSync(
        path.join(tmp, stackFile(name)),
        git(["show", `${ref}:${stackFile(name)}`], root),
      );
      try {
        stacks.push(parseStackConfig(name, readStackFile(name, tmp).raw));
      } catch (e) {
        if (!(e instanceof InputError)) throw e;
      }
    }
    const changed = new Map(changes.map((c) => [c.path, c]));
    const tenants = tenantsOf([...stacks, ...head.stacks], (dir) => {
      const now = head.tenants.get(dir) ?? [];
      const kept = now.filter((t) => !changed.has(t.file));
      const older = changes
        .filter(
          (c) =>
            c.status !== "added" && path.posix.dirname(c.path) === dir && /\.ya?ml$/.test(c.path),
        )
        .map((c) => tenantRef(c.path, git(["show", `${ref}:${c.path}`], root)));
      return [...kept, ...older].sort((a, b) => (a.file < b.file ? -1 : 1));
    });
    return { stacks, tenants };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function tenantsOf(
  stacks: readonly ShardedStack[],
  read: (dir: string) => TenantRef[],
): Map<string, TenantRef[]> {
  const dirs = [...new Set(stacks.map((s) => normalize(s.tenantsDir)))];
  return new Map(dirs.map((d) => [d, read(d)]));
}

/**
 * The command that moves a tenant's state between stacks: its Tenant component is top-level, and
 * `pulumi state move` takes a component's children (placement, roles, database, key, ...) with it.
 */
export function stateMoveCommand(move: ShardMove): string {
  const urn = `urn:pulumi:${move.from}::${PROJECT}::pg-tenants:index:Tenant::${tenantLogicalName(move.tenant)}`;
  return `pulumi state move --source ${move.from} --dest ${move.to} '${urn}'`;
}

export function main(argv: string[], root = process.cwd()): number {
  let args: CommandArgs;
  try {
    args = readCommandArgs(argv, "affected");
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return EXIT.usage;
  }
  const base = args.value("base");
  const only = args.list("stack");
  const allowMoves = args.flag("allow-moves");
  if (base === "") {
    console.error(`error: --base must name a git revision\nusage: ${args.usage}`);
    return EXIT.usage;
  }
  try {
    const changes = changedFiles(base, root);
    const head = headSide(root);
    const unknown = only.filter((s) => !head.stacks.some((h) => h.stack === s));
    if (unknown.length > 0) {
      console.error(
        `error: unknown stack(s) ${unknown.join(", ")}; stacks here: ${head.stacks.map((s) => s.stack).join(", ")}`,
      );
      return EXIT.usage;
    }
    const result = affectedStacks(changes, baseSide(base, root, changes, head), head);
    if (result.moves.length > 0) {
      const lines = result.moves.map(
        (m) => `  - ${m.tenant}: ${m.from} -> ${m.to}\n      ${stateMoveCommand(m)}`,
      );
      const what = `This change moves ${result.moves.length} tenant(s) to another stack:\n${lines.join("\n")}`;
      if (!allowMoves) {
        console.error(
          `error: ${what}\nMove their state first (see "Re-sharding" in docs/scale.md), then run again with --allow-moves.`,
        );
        return EXIT.failed;
      }
      console.error(`${what}\n--allow-moves: their state is taken to have been moved already.`);
    }
    const stacks = only.length > 0 ? result.stacks.filter((s) => only.includes(s)) : result.stacks;
    console.log(JSON.stringify(stacks));
    return EXIT.ok;
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT.failed;
  }
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
