import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { readTenantFiles, SourceFile } from "../../infra/manifest";
import { UsageError } from "../lib/cli";

// pg-tenants check (index.ts): The base branch's manifest, from a folder or a git revision.

/** The tenant files of `base`: a folder (a checkout's root, or the tenants folder) or a git revision. */
export function readBaseFiles(base: string, tenantsDir: string, root: string): SourceFile[] {
  const relDir = path.relative(root, path.resolve(root, tenantsDir)).split(path.sep).join("/");
  const name = (file: string) => `${relDir}/${path.basename(file)}`;
  const asDir = path.resolve(root, base);
  if (fs.existsSync(asDir) && fs.statSync(asDir).isDirectory()) {
    const dir = fs.existsSync(path.join(asDir, relDir)) ? path.join(asDir, relDir) : asDir;
    return readTenantFiles(dir, root).map((f) => ({ file: name(f.file), text: f.text }));
  }
  const git = (args: string[]) => {
    try {
      return execFileSync("git", args, {
        cwd: root,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      });
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: string };
      if (err.code === "ENOENT")
        throw new UsageError("--base names a git revision, but git is not installed");
      throw new UsageError(
        `--base ${base} is neither a folder nor a git revision here (git ${args[0]}: ${
          String(err.stderr ?? err.message)
            .trim()
            .split("\n")[0]
        })`,
      );
    }
  };
  git(["rev-parse", "--verify", "--quiet", `${base}^{commit}`]);
  return git(["ls-tree", "--name-only", base, "--", `${relDir}/`])
    .split("\n")
    .filter((p) => /\.ya?ml$/.test(p))
    .sort()
    .map((p) => ({ file: name(p), text: git(["show", `${base}:./${p}`]) }));
}
