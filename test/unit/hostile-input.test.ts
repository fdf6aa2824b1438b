import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { diffManifests, readManifestEntries } from "../../infra/changes";
import { InputError } from "../../infra/issues";
import { MAX_INPUT_BYTES } from "../../infra/files";
import { ManifestContext, parseManifest, readTenantFiles } from "../../infra/manifest";
import { readCommandArgs, UsageError } from "../../tools/lib/cli";
import { safeOutputPath } from "../../tools/lib/files";
import { readStackFile } from "../../tools/stack";
import { COMMANDS } from "../../tools/commands";
import { CheckReport, renderMarkdown, renderText } from "../../tools/check/report";

/**
 * Input that would hang, flood or confuse the readers: each is refused with one line naming the
 * file (and the field), and every problem of a file is reported together.
 */

const CTX: ManifestContext = {
  namePrefix: "tenant_",
  tiers: ["standard", "premium"],
  reservedNames: [],
  today: "2026-12-02",
};
const good = (id: string, extra = "") => `id: ${id}\ndisplayName: T\ntier: standard\n${extra}`;
const BOMB = `a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: [*d,*d,*d,*d,*d,*d,*d,*d,*d]
`;

/** Every issue of an InputError as `file: field: message` lines. */
function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof InputError)
      return e.issues.map((i) => `${i.file}: ${i.field ? `${i.field}: ` : ""}${i.message}`);
    throw e;
  }
  throw new Error("expected an InputError");
}

describe("the tenants folder reader", () => {
  let root: string;
  let dir: string;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-hostile-"));
    dir = path.join(root, "tenants");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "acme.yaml"), good("acme"));
    execFileSync("mkfifo", [path.join(dir, "fifo.yaml")]);
    fs.symlinkSync("/dev/zero", path.join(dir, "zero.yaml"));
    fs.symlinkSync(path.join(dir, "gone"), path.join(dir, "dangling.yaml"));
    fs.symlinkSync(path.join(dir, "loop.yaml"), path.join(dir, "loop.yaml"));
    fs.mkdirSync(path.join(dir, "folder.yaml"));
    fs.writeFileSync(path.join(dir, "huge.yaml"), "#".repeat(MAX_INPUT_BYTES + 1));
    fs.writeFileSync(path.join(dir, "bomb.yaml"), BOMB);
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it("reads regular files only, without hanging, and names each refused one", () => {
    const started = Date.now();
    const files = readTenantFiles(dir, root);
    assert.ok(Date.now() - started < 2000);
    assert.deepEqual(
      issuesOf(() => parseManifest(files, CTX)),
      [
        "tenants/bomb.yaml: malformed YAML: aliases expand too far (more than 100 expansions; an alias bomb?)",
        `tenants/dangling.yaml: is a symbolic link to a missing file (${path.join(dir, "gone")})`,
        "tenants/fifo.yaml: is a FIFO (named pipe), not a file",
        "tenants/folder.yaml: is a directory, not a file",
        `tenants/huge.yaml: is ${MAX_INPUT_BYTES + 1} bytes; at most ${MAX_INPUT_BYTES} are read`,
        "tenants/loop.yaml: is a symbolic link loop",
        "tenants/zero.yaml: is a symbolic link into /dev/zero: only regular files are read",
      ],
    );
  });
});

describe("a tenant file's problems", () => {
  it("are all reported together, unknown fields included", () => {
    const long = "a".repeat(40);
    assert.deepEqual(
      issuesOf(() =>
        parseManifest(
          [
            {
              file: `tenants/${long}.yaml`,
              text: `${good(long).replace("standard", "gold")}colour: red\n`,
            },
          ],
          CTX,
        ),
      ),
      [
        `tenants/${long}.yaml: colour: unknown field; allowed: id, displayName, tier, state, offboardedAt, move, limits`,
        `tenants/${long}.yaml: id: is 40 characters; at most 33 fit in PostgreSQL's 63-byte names with prefix tenant_ (names are refused, never truncated)`,
        `tenants/${long}.yaml: tier: unknown tier "gold"; the stack has: standard, premium`,
      ],
    );
  });

  it("refuse an offboarding dated in the future", () => {
    assert.deepEqual(
      issuesOf(() =>
        parseManifest(
          [
            {
              file: "tenants/acme.yaml",
              text: good("acme", "state: offboarded\noffboardedAt: 2026-12-03\n"),
            },
          ],
          CTX,
        ),
      ),
      [
        "tenants/acme.yaml: offboardedAt: is in the future (today is 2026-12-02): it is the day the tenant was offboarded, from which its retention counts",
      ],
    );
  });

  it("refuse a statement timeout beyond PostgreSQL's int", () => {
    assert.deepEqual(
      issuesOf(() =>
        parseManifest(
          [
            {
              file: "tenants/acme.yaml",
              text: good("acme", "limits:\n  statementTimeoutMs: 2147483648\n"),
            },
          ],
          CTX,
        ),
      ),
      [
        "tenants/acme.yaml: limits.statementTimeoutMs: must be from 0 (no timeout) to 2147483647 milliseconds",
      ],
    );
  });
});

describe("the gate on retention", () => {
  it("refuses moving offboardedAt earlier than the base, and allows later", () => {
    const at = (d: string) => [
      { file: "tenants/acme.yaml", text: good("acme", `state: offboarded\noffboardedAt: ${d}\n`) },
    ];
    const earlier = diffManifests(
      readManifestEntries(at("2026-11-20")),
      readManifestEntries(at("1900-01-01")),
    );
    assert.deepEqual(
      earlier.violations.map((v) => `${v.rule}: ${v.message}`),
      [
        "retention-not-shortened: tenants/acme.yaml moves offboardedAt from 2026-11-20 to 1900-01-01: that shortens tenant acme's retention (a purge would be allowed earlier); the day of the offboarding is never moved earlier: keep offboardedAt: 2026-11-20.",
      ],
    );
    const later = diffManifests(
      readManifestEntries(at("2026-11-20")),
      readManifestEntries(at("2026-11-25")),
    );
    assert.deepEqual(later.violations, []);
  });
});

describe("the stack file reader", () => {
  let root: string;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-hostile-stack-"));
    fs.mkdirSync(path.join(root, "stacks"));
    fs.writeFileSync(
      path.join(root, "stacks", "Pulumi.bomb.yaml"),
      `config:\n  ${BOMB.replace(/\n/g, "\n  ")}`,
    );
    fs.writeFileSync(
      path.join(root, "stacks", "Pulumi.dup.yaml"),
      "config:\n  pg-tenants:template: a\n  pg-tenants:template: b\n",
    );
    fs.symlinkSync("/dev/zero", path.join(root, "stacks", "Pulumi.zero.yaml"));
    fs.symlinkSync(path.join(root, "nowhere"), path.join(root, "stacks", "Pulumi.dangling.yaml"));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it.each([
    [
      "bomb",
      "stacks/Pulumi.bomb.yaml: malformed YAML: aliases expand too far (more than 100 expansions; an alias bomb?)",
    ],
    ["dup", "stacks/Pulumi.dup.yaml: malformed YAML: Map keys must be unique"],
    [
      "zero",
      "stacks/Pulumi.zero.yaml: is a symbolic link into /dev/zero: only regular files are read",
    ],
    [
      "dangling",
      "stacks/Pulumi.dangling.yaml: is a symbolic link to a missing file (<root>/nowhere)",
    ],
  ])("refuses stack %s in one line naming the file", (stack, line) => {
    assert.deepEqual(
      issuesOf(() => readStackFile(stack, root)),
      [line.replace("<root>", root)],
    );
  });
});

describe("command lines", () => {
  it.each(COMMANDS.filter((c) => c.rawArgs !== true).map((c) => [c.name]))(
    "pg-tenants %s refuses an extra positional argument",
    (name) => {
      const spec = COMMANDS.find((c) => c.name === name)!;
      const required = Object.entries(spec.options)
        .filter(([, o]) => o.required === true)
        .flatMap(([key]) => [`--${key}`, "x"]);
      const argv = [...spec.args.map((a) => `x${a.name}`), ...required, "extra"];
      assert.throws(
        () => readCommandArgs(argv, name),
        (e: unknown) =>
          e instanceof UsageError && e.message.startsWith('unexpected argument "extra"'),
      );
    },
  );

  it("refuses an output file in /proc, and one over a folder", () => {
    assert.throws(
      () => safeOutputPath("/", "/proc/nope/x.dump", "--out"),
      /^UsageError: --out \/proc\/nope\/x\.dump is in a pseudo file system \(\/proc, \/sys, \/dev\): choose a regular folder$/,
    );
    assert.throws(() => safeOutputPath("/", os.tmpdir(), "--out"), /is a directory, not a file/);
  });
});

describe("report text", () => {
  const report: CheckReport = {
    stack: "local",
    ok: true,
    manifestTenants: 1,
    tenants: [
      {
        id: "acme",
        displayName: "Evil\u001b[2J\nFAILED: [click](https://evil.test) <img src=x> | *bold*",
        state: "active",
        key: "local",
        placements: [],
      } as unknown as CheckReport["tenants"][number],
    ],
    clusters: ["standard"],
    resources: 25,
    policies: {
      pack: "pg-tenants",
      count: 13,
      disabled: ["no-public-grants", "tenant-role-attributes"],
    },
    violations: [],
    seconds: 1,
  };

  it("is escaped for a terminal: no escape sequence or line break from a displayName", () => {
    const text = renderText(report);
    assert.ok(!text.includes("\u001b"));
    assert.ok(
      text.includes(
        "  acme (Evil\\x1b[2J\\x0aFAILED: [click](https://evil.test) <img src=x> | *bold*), active, key local",
      ),
    );
    assert.equal(text.split("\n").filter((l) => l.startsWith("FAILED")).length, 0);
  });

  it("is escaped for markdown: no link, HTML, emphasis or cell break from a displayName", () => {
    const md = renderMarkdown(report);
    assert.ok(
      md.includes(
        "| acme \\(Evil\\\\x1b\\[2J FAILED: \\[click\\]\\(https://evil.test\\) &lt;img src=x&gt; \\| \\*bold\\*\\) |",
      ),
      md,
    );
  });

  it("says which policies a policy config disabled, never a plain passed", () => {
    assert.deepEqual(renderText(report).split("\n").slice(0, 2), [
      "pg-tenants check of stack local: passed with 2 of 13 policies disabled",
      "1 tenant(s) on 1 cluster(s), 25 resources, 13 policies (2 disabled: no-public-grants, tenant-role-attributes): 0 mandatory and 0 advisory violation(s)",
    ]);
    const md = renderMarkdown(report);
    assert.ok(
      md.startsWith("### pg-tenants check: stack `local` passed with 2 of 13 policies disabled"),
    );
    assert.ok(
      md.includes(
        "None from the policies that ran; disabled by the policy config, so not checked: `no-public-grants`, `tenant-role-attributes`.",
      ),
    );
  });
});
