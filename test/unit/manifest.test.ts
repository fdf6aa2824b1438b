import assert from "node:assert/strict";
import { describe, it } from "@jest/globals";
import { InputError } from "../../infra/issues";
import { ManifestContext, parseManifest, SourceFile } from "../../infra/manifest";

const ctx: ManifestContext = {
  namePrefix: "tenant_",
  tiers: ["standard", "premium"],
  reservedNames: ["customer_template_v1", "pgtenants_provisioner"],
};

function tenantFile(id: string, extra = "", file = `tenants/${id}.yaml`): SourceFile {
  return { file, text: `id: ${id}\ndisplayName: Tenant ${id}\ntier: standard\n${extra}` };
}

/** The located problems parseManifest reports, as `file: field: message` lines. */
function problems(files: SourceFile[]): string[] {
  try {
    parseManifest(files, ctx);
  } catch (e) {
    assert.ok(e instanceof InputError, `expected an InputError, got ${String(e)}`);
    return e.issues.map((i) =>
      i.field ? `${i.file}: ${i.field}: ${i.message}` : `${i.file}: ${i.message}`,
    );
  }
  return [];
}

const PATTERN =
  "must match ^[a-z][a-z0-9_]*$ (a lowercase letter, then lowercase letters, digits or _)";
const RESERVED =
  "is a reserved name (postgres, template0/1, public, pg_*, the template, the provisioning roles)";

describe("parseManifest", () => {
  it("returns valid tenants sorted by id, with defaults", () => {
    const tenants = parseManifest(
      [
        tenantFile("zeta"),
        tenantFile(
          "acme",
          "state: active\nlimits:\n  connectionLimit: 5\n  statementTimeoutMs: 0\n",
        ),
      ],
      ctx,
    );
    assert.deepEqual(tenants, [
      {
        id: "acme",
        displayName: "Tenant acme",
        tier: "standard",
        state: "active",
        limits: { connectionLimit: 5, statementTimeoutMs: 0 },
        file: "tenants/acme.yaml",
      },
      {
        id: "zeta",
        displayName: "Tenant zeta",
        tier: "standard",
        state: "active",
        file: "tenants/zeta.yaml",
      },
    ]);
  });

  const cases: Array<[string, SourceFile[], string[]]> = [
    ["an upper-case id", [tenantFile("Acme")], [`tenants/Acme.yaml: id: ${PATTERN}`]],
    ["a leading digit", [tenantFile("1acme")], [`tenants/1acme.yaml: id: ${PATTERN}`]],
    [
      "quotes and a semicolon",
      [tenantFile(`"acme'; DROP ROLE postgres; --"`, "", "tenants/evil.yaml")],
      [`tenants/evil.yaml: id: ${PATTERN}`],
    ],
    [
      "a Cyrillic look-alike letter",
      [tenantFile("\u0430cme", "", "tenants/acme.yaml")],
      [`tenants/acme.yaml: id: ${PATTERN}`],
    ],
    [
      "a path",
      [tenantFile(`"../etc"`, "", "tenants/etc.yaml")],
      [`tenants/etc.yaml: id: ${PATTERN}`],
    ],
    ["a hyphen", [tenantFile("acme-corp")], [`tenants/acme-corp.yaml: id: ${PATTERN}`]],
    [
      "an id too long for 63-byte names",
      [tenantFile("a".repeat(34))],
      [
        `tenants/${"a".repeat(34)}.yaml: id: is 34 characters; at most 33 fit in PostgreSQL's 63-byte names with prefix tenant_ (names are refused, never truncated)`,
      ],
    ],
    ["postgres", [tenantFile("postgres")], [`tenants/postgres.yaml: id: "postgres" ${RESERVED}`]],
    [
      "template1",
      [tenantFile("template1")],
      [`tenants/template1.yaml: id: "template1" ${RESERVED}`],
    ],
    ["public", [tenantFile("public")], [`tenants/public.yaml: id: "public" ${RESERVED}`]],
    [
      "a pg_ name",
      [tenantFile("pg_signal")],
      [`tenants/pg_signal.yaml: id: "pg_signal" ${RESERVED}`],
    ],
    [
      "the template's name",
      [tenantFile("customer_template_v1")],
      [`tenants/customer_template_v1.yaml: id: "customer_template_v1" ${RESERVED}`],
    ],
    [
      "the provisioning role's name",
      [tenantFile("pgtenants_provisioner")],
      [`tenants/pgtenants_provisioner.yaml: id: "pgtenants_provisioner" ${RESERVED}`],
    ],
    [
      "an id ending like a login role",
      [tenantFile("acme_rw")],
      ["tenants/acme_rw.yaml: id: must not end with _rw: another tenant's role names end that way"],
    ],
    [
      "an id ending like the owner role",
      [tenantFile("acme_owner")],
      [
        "tenants/acme_owner.yaml: id: must not end with _owner: another tenant's role names end that way",
      ],
    ],
    [
      "a file name that differs from the id",
      [tenantFile("acme", "", "tenants/acme-corp.yaml")],
      ["tenants/acme-corp.yaml: id: must match the file name: this file must be named acme.yaml"],
    ],
    [
      "duplicate ids",
      [tenantFile("acme"), tenantFile("acme", "", "tenants/acme2.yaml")],
      [
        "tenants/acme2.yaml: id: must match the file name: this file must be named acme.yaml",
        "tenants/acme2.yaml: id: duplicate id acme, already used by tenants/acme.yaml",
      ],
    ],
    [
      "an unknown tier",
      [{ file: "tenants/acme.yaml", text: "id: acme\ndisplayName: Acme\ntier: gold\n" }],
      ['tenants/acme.yaml: tier: unknown tier "gold"; the stack has: standard, premium'],
    ],
    [
      "an unknown field",
      [tenantFile("acme", "owner: bob\n")],
      [
        "tenants/acme.yaml: owner: unknown field; allowed: id, displayName, tier, state, offboardedAt, move, limits",
      ],
    ],
    [
      "an unknown limit",
      [tenantFile("acme", "limits:\n  maxRows: 5\n")],
      [
        "tenants/acme.yaml: limits.maxRows: unknown field; allowed: connectionLimit, statementTimeoutMs",
      ],
    ],
    [
      "an unknown state",
      [tenantFile("acme", "state: paused\n")],
      ["tenants/acme.yaml: state: must be one of active, offboarded"],
    ],
    [
      "a connection limit out of range",
      [tenantFile("acme", "limits:\n  connectionLimit: 0\n")],
      ["tenants/acme.yaml: limits.connectionLimit: must be from 1 to 1000"],
    ],
    [
      "a negative statement timeout",
      [tenantFile("acme", "limits:\n  statementTimeoutMs: -1\n")],
      [
        "tenants/acme.yaml: limits.statementTimeoutMs: must be from 0 (no timeout) to 2147483647 milliseconds",
      ],
    ],
    [
      "missing fields",
      [{ file: "tenants/acme.yaml", text: "id: acme\n" }],
      ["tenants/acme.yaml: displayName: is required", "tenants/acme.yaml: tier: is required"],
    ],
    [
      "an empty file",
      [{ file: "tenants/acme.yaml", text: "" }],
      [
        "tenants/acme.yaml: id: is required",
        "tenants/acme.yaml: displayName: is required",
        "tenants/acme.yaml: tier: is required",
      ],
    ],
    [
      "a number where a string belongs",
      [{ file: "tenants/acme.yaml", text: "id: 42\ndisplayName: Acme\ntier: standard\n" }],
      ["tenants/acme.yaml: id: must be a string"],
    ],
    [
      "malformed YAML",
      [{ file: "tenants/acme.yaml", text: "id: [acme\ndisplayName: Acme\n" }],
      [
        "tenants/acme.yaml: malformed YAML: Flow sequence in block collection must be sufficiently indented and end with a ]",
      ],
    ],
    [
      "a repeated key",
      [
        {
          file: "tenants/acme.yaml",
          text: "id: acme\nid: other\ndisplayName: A\ntier: standard\n",
        },
      ],
      ["tenants/acme.yaml: malformed YAML: Map keys must be unique"],
    ],
  ];

  for (const [what, files, expected] of cases) {
    it(`refuses ${what} with a located message`, () => {
      assert.deepEqual(problems(files), expected);
    });
  }

  it("reports every problem of every file at once", () => {
    const found = problems([
      tenantFile("Bad"),
      tenantFile("good"),
      tenantFile("acme", "tier2: x\n"),
    ]);
    assert.deepEqual(found, [
      `tenants/Bad.yaml: id: ${PATTERN}`,
      "tenants/acme.yaml: tier2: unknown field; allowed: id, displayName, tier, state, offboardedAt, move, limits",
    ]);
  });

  it("puts the summary and every issue in the error message", () => {
    assert.throws(
      () => parseManifest([tenantFile("Bad")], ctx),
      (e: Error) =>
        e.message ===
        `The tenants manifest has 1 problem(s):\n  - tenants/Bad.yaml: id: ${PATTERN}`,
    );
  });
});

describe("manifest: offboarding and moves", () => {
  it("accepts an offboarded tenant with its date and a declared move", () => {
    const [a, b] = parseManifest(
      [
        tenantFile("acme", "state: offboarded\noffboardedAt: 2026-11-01\n"),
        tenantFile("globex", "move:\n  to: premium\n"),
      ],
      ctx,
    );
    assert.equal(a.state, "offboarded");
    assert.equal(a.offboardedAt, "2026-11-01");
    assert.deepEqual(b.move, { to: "premium" });
  });

  const cases: [string, string, string[]][] = [
    [
      "offboarded without a date",
      "state: offboarded\n",
      [
        "tenants/acme.yaml: offboardedAt: is required with state: offboarded (the day retention starts, YYYY-MM-DD)",
      ],
    ],
    [
      "a date while active",
      "offboardedAt: 2026-11-01\n",
      ["tenants/acme.yaml: offboardedAt: is only allowed with state: offboarded"],
    ],
    [
      "a date that is no calendar day",
      "state: offboarded\noffboardedAt: 2026-02-30\n",
      ["tenants/acme.yaml: offboardedAt: is not a calendar day (YYYY-MM-DD)"],
    ],
    [
      "a date in another format",
      "state: offboarded\noffboardedAt: 01/11/2026\n",
      ["tenants/acme.yaml: offboardedAt: must be a date YYYY-MM-DD"],
    ],
    [
      "an unknown state",
      "state: archived\n",
      ["tenants/acme.yaml: state: must be one of active, offboarded"],
    ],
    [
      "a move to the same tier",
      "move:\n  to: standard\n",
      [
        "tenants/acme.yaml: move.to: is the tenant's tier already (standard); name another tier or remove move",
      ],
    ],
    [
      "a move to an unknown tier",
      "move:\n  to: gold\n",
      ['tenants/acme.yaml: move.to: unknown tier "gold"; the stack has: standard, premium'],
    ],
    ["a move without a target", "move: {}\n", ["tenants/acme.yaml: move.to: is required"]],
    [
      "an unknown field in move",
      "move:\n  to: premium\n  at: now\n",
      ["tenants/acme.yaml: move.at: unknown field; allowed: to"],
    ],
    [
      "a move of an offboarded tenant",
      "state: offboarded\noffboardedAt: 2026-11-01\nmove:\n  to: premium\n",
      ["tenants/acme.yaml: move: an offboarded tenant cannot move; remove move"],
    ],
  ];
  for (const [what, extra, expected] of cases) {
    it(`refuses ${what} with a located message`, () => {
      assert.deepEqual(problems([tenantFile("acme", extra)]), expected);
    });
  }
});
