import { describe, it } from "@jest/globals";
import assert from "node:assert/strict";
import { diffManifests, readManifestEntries } from "../../infra/changes";

const file = (id: string, body: string) => ({
  file: `tenants/${id}.yaml`,
  text: `id: ${id}\n${body}`,
});
const entries = (...files: { file: string; text: string }[]) => readManifestEntries(files);

const acme = file("acme", "displayName: Acme\ntier: standard\nstate: active\n");
const globex = file(
  "globex",
  "displayName: Globex\ntier: premium\nlimits:\n  connectionLimit: 40\n",
);

describe("diffManifests", () => {
  it("finds nothing between identical manifests", () => {
    assert.deepEqual(diffManifests(entries(acme, globex), entries(acme, globex)), {
      added: [],
      changed: [],
      removed: [],
      violations: [],
    });
  });

  it("lists added tenants by id, sorted", () => {
    const hooli = file("hooli", "displayName: Hooli\ntier: standard\n");
    const diff = diffManifests(entries(globex), entries(hooli, globex, acme));
    assert.deepEqual(
      diff.added.map((e) => [e.id, e.file]),
      [
        ["acme", "tenants/acme.yaml"],
        ["hooli", "tenants/hooli.yaml"],
      ],
    );
    assert.deepEqual(diff.violations, []);
  });

  it("lists changed fields with their old and new values, nested fields dotted", () => {
    const after = file(
      "globex",
      "displayName: Globex Inc\ntier: premium\nlimits:\n  connectionLimit: 60\n  statementTimeoutMs: 1000\n",
    );
    assert.deepEqual(diffManifests(entries(globex), entries(after)).changed, [
      {
        id: "globex",
        file: "tenants/globex.yaml",
        fields: [
          { field: "displayName", from: "Globex", to: "Globex Inc" },
          { field: "limits.connectionLimit", from: 40, to: 60 },
          { field: "limits.statementTimeoutMs", from: undefined, to: 1000 },
        ],
      },
    ]);
  });

  it("compares with the schema's defaults applied: an explicit default is no change", () => {
    const implicit = file("acme", "displayName: Acme\ntier: standard\n");
    assert.deepEqual(diffManifests(entries(implicit), entries(acme)).changed, []);
  });

  it("refuses removing a tenant that is not offboarded", () => {
    const diff = diffManifests(entries(acme, globex), entries(globex));
    assert.deepEqual(
      diff.removed.map((e) => e.id),
      ["acme"],
    );
    assert.deepEqual(diff.violations, [
      {
        rule: "removed-only-when-offboarded",
        tenant: "acme",
        file: "tenants/acme.yaml",
        message:
          "tenants/acme.yaml was removed, but tenant acme is not offboarded (state: active); removing a file is not offboarding: set state: offboarded, merge and deploy that first, then remove the file.",
      },
    ]);
  });

  it("allows removing a tenant the base branch has offboarded", () => {
    const offboarded = file(
      "acme",
      "displayName: Acme\ntier: standard\nstate: offboarded\noffboardedAt: 2026-01-15\n",
    );
    const diff = diffManifests(entries(offboarded, globex), entries(globex));
    assert.deepEqual(
      diff.removed.map((e) => e.id),
      ["acme"],
    );
    assert.deepEqual(diff.violations, []);
  });

  it("still compares files the current schema rejects (an old base), by their file name if need be", () => {
    const old = {
      file: "tenants/legacy.yaml",
      text: "displayName: Legacy\ntier: standard\nretired: true\n",
    };
    const broken = { file: "tenants/broken.yaml", text: "id: [unclosed\n" };
    const base = entries(old, broken);
    assert.deepEqual(
      base.map((e) => e.id),
      ["legacy", "broken"],
    );
    const diff = diffManifests(base, []);
    assert.deepEqual(
      diff.violations.map((v) => v.tenant),
      ["broken", "legacy"],
    );
  });
});

describe("diffManifests: editing tier alone", () => {
  /** Tenant acme's file on `tier`, with `extra` YAML after. */
  const acmeOn = (tier: string, extra = "") =>
    file("acme", `displayName: Tenant acme\ntier: ${tier}\n${extra}`);

  it("is refused by the check unless the base declared that move", () => {
    const alone = diffManifests(entries(acmeOn("standard")), entries(acmeOn("premium")));
    assert.deepEqual(alone.violations, [
      {
        rule: "tier-changed-only-by-move",
        tenant: "acme",
        file: "tenants/acme.yaml",
        message:
          'tenants/acme.yaml changes tier from standard to premium without a declared move; editing tier alone would leave tenant acme\'s data on standard and point it at an empty database on premium. To move it: set "move: { to: premium }" (keep tier: standard), merge and deploy (pulumi up provisions the target), then run npm run move -- acme, which copies and verifies the data and sets tier: premium itself.',
      },
    ]);
    const declared = diffManifests(
      entries(acmeOn("standard", "move:\n  to: premium\n")),
      entries(acmeOn("premium")),
    );
    assert.deepEqual(declared.violations, []);
    const elsewhere = diffManifests(
      entries(acmeOn("standard", "move:\n  to: premium\n")),
      entries(acmeOn("gold")),
    );
    assert.deepEqual(
      elsewhere.violations.map((v) => v.rule),
      ["tier-changed-only-by-move"],
    );
    const declaring = diffManifests(
      entries(acmeOn("standard")),
      entries(acmeOn("standard", "move:\n  to: premium\n")),
    );
    assert.deepEqual(declaring.violations, []);
  });
});
