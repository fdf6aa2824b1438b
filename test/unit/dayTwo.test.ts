import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "@jest/globals";
import { diffManifests, readManifestEntries } from "../../infra/changes";
import { parseStackConfig, StackConfig } from "../../infra/config";
import { renderHba } from "../../infra/hba";
import { InputError } from "../../infra/issues";
import { ManifestContext, parseManifest, SourceFile, Tenant } from "../../infra/manifest";
import { buildFleetModel, buildTenantModel } from "../../infra/model";
import {
  abandonReport,
  nextSteps,
  placementUrn,
  resumeHint,
  rewriteTenantFile,
  stateReport,
} from "../../tools/move";
import { main as offboard, purgeNextSteps, retentionEnd, tenantUrn } from "../../tools/offboard";
import { swapStatements } from "../../tools/restore";
import {
  CommandError,
  CommandIo,
  ensureParent,
  findTenant,
  loadContext,
} from "../../tools/lib/cli";
import { parseToolVersion, PgTool, requireToolForServer } from "../../tools/lib/dump";
import {
  isSealed,
  KmsLike,
  openingKey,
  readSealHeader,
  sealFile,
  sealingKey,
  unsealFile,
} from "../../tools/lib/seal";
import { readStackFile } from "../../tools/stack";
import { resolve } from "../../harness/mocks";
import { ofTenant, ProgramRun, runProgram, unwrapSecrets } from "../../harness/program";

/**
 * Day-two changes of the manifest and the program: offboarding, declared tier moves, the
 * refusal of a tier edited alone, and the operator steps the commands print.
 */

const ctx: ManifestContext = {
  namePrefix: "tenant_",
  tiers: ["standard", "premium"],
  reservedNames: [],
};
const file = (id: string, extra = "", tier = "standard"): SourceFile => ({
  file: `tenants/${id}.yaml`,
  text: `id: ${id}\ndisplayName: Tenant ${id}\ntier: ${tier}\n${extra}`,
});

function problems(files: SourceFile[]): string[] {
  try {
    parseManifest(files, ctx);
  } catch (e) {
    assert.ok(e instanceof InputError, String(e));
    return e.issues.map((i) => `${i.file}: ${i.field}: ${i.message}`);
  }
  return [];
}

const localConfig = (): StackConfig => parseStackConfig("local", readStackFile("local").raw);
const tenant = (extra: Partial<Tenant> = {}): Tenant => ({
  id: "acme",
  displayName: "Acme",
  tier: "standard",
  state: "active",
  file: "tenants/acme.yaml",
  ...extra,
});

describe("manifest: offboarding and moves", () => {
  it("accepts an offboarded tenant with its date and a declared move", () => {
    const [a, b] = parseManifest(
      [
        file("acme", "state: offboarded\noffboardedAt: 2026-11-01\n"),
        file("globex", "move:\n  to: premium\n"),
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
      assert.deepEqual(problems([file("acme", extra)]), expected);
    });
  }
});

describe("stack config: retentionDays", () => {
  it("defaults to 30 days and accepts 0", () => {
    assert.equal(localConfig().retentionDays, 30);
    assert.equal(
      parseStackConfig("local", { ...readStackFile("local").raw, retentionDays: 0 }).retentionDays,
      0,
    );
  });
  it("refuses a negative or fractional period", () => {
    for (const [value, message] of [
      [-1, "must be 0 or more days"],
      [1.5, "must be a whole number of days"],
      ["30", "must be a number"],
    ] as const) {
      assert.throws(
        () => parseStackConfig("local", { ...readStackFile("local").raw, retentionDays: value }),
        (e: unknown) =>
          e instanceof InputError &&
          e.issues.length === 1 &&
          e.issues[0].field === "pg-tenants:retentionDays" &&
          e.issues[0].message === message,
      );
    }
  });
});

describe("model: offboarded tenant", () => {
  const cfg = localConfig();
  const active = buildTenantModel(tenant(), cfg);
  const off = buildTenantModel(tenant({ state: "offboarded", offboardedAt: "2026-11-01" }), cfg);

  it("makes the logins NOLOGIN and keeps every role, limit and membership", () => {
    assert.deepEqual(
      off.roles.map((r) => [r.name, r.login]),
      [
        ["tenant_acme", false],
        ["tenant_acme_owner", false],
        ["tenant_acme_rw", false],
        ["tenant_acme_ro", false],
      ],
    );
    assert.deepEqual(
      active.roles.map((r) => r.login),
      [false, false, true, true],
    );
    assert.deepEqual(
      off.roles.map(({ login: _l, ...rest }) => rest),
      active.roles.map(({ login: _l, ...rest }) => rest),
    );
  });

  it("revokes the group's CONNECT and closes the database; every other grant, the key and the name stay", () => {
    assert.equal(off.database.open, false);
    assert.equal(active.database.open, true);
    const connect = (m: typeof off) => m.grants.find((g) => g.key === "group-connect")?.privileges;
    assert.deepEqual(connect(off), []);
    assert.deepEqual(connect(active), ["CONNECT"]);
    assert.deepEqual(
      off.grants.filter((g) => g.key !== "group-connect"),
      active.grants.filter((g) => g.key !== "group-connect"),
    );
    assert.deepEqual(off.key, active.key);
    assert.deepEqual(off.database.name, active.database.name);
    assert.equal(off.offboardedAt, "2026-11-01");
    assert.equal(active.offboardedAt, undefined);
  });

  it("renders no pg_hba line for it", () => {
    const text = renderHba("standard", "pgtenants_provisioner", cfg.hba, [
      off,
      buildTenantModel(tenant({ id: "initech" }), cfg),
    ]);
    assert.ok(!text.includes("tenant_acme"));
    assert.ok(text.includes("host tenant_initech +tenant_initech 127.0.0.1/32 scram-sha-256"));
  });
});

describe("model: declared move", () => {
  const cfg = localConfig();
  const moving = buildTenantModel(tenant({ move: { to: "premium" } }), cfg);
  const moved = buildTenantModel(tenant({ tier: "premium" }), cfg);

  it("targets exactly the model the tenant has once its file says the new tier", () => {
    assert.equal(moving.tier, "standard");
    assert.equal(moving.logical.placement, "acme@standard");
    assert.deepEqual(moving.move?.target, moved);
    assert.equal(moving.move?.target.logical.placement, "acme@premium");
    // The premium tier's own defaults apply on the target (connection limit 50 per login there).
    assert.equal(moving.database.connectionLimit, 42);
    assert.equal(moving.move?.target.database.connectionLimit, 102);
  });

  it("places the tenant on both tiers of the fleet and admits it in both pg_hba files", () => {
    const fleet = buildFleetModel(
      [tenant({ move: { to: "premium" } }), tenant({ id: "globex", tier: "premium" })],
      cfg,
    );
    assert.deepEqual(
      fleet.byTier.standard.map((m) => m.id),
      ["acme"],
    );
    assert.deepEqual(
      fleet.byTier.premium.map((m) => m.id),
      ["globex"],
    );
    assert.deepEqual(
      fleet.movingIn.premium.map((m) => m.logical.placement),
      ["acme@premium"],
    );
    assert.deepEqual(fleet.movingIn.standard, []);
  });
});

const PLACEMENT_TYPES = new Set([
  "pg-tenants:index:TenantPlacement",
  "postgresql:index/role:Role",
  "postgresql:index/grantRole:GrantRole",
  "postgresql:index/database:Database",
  "postgresql:index/grant:Grant",
  "postgresql:index/defaultPrivileges:DefaultPrivileges",
  "postgresql:index/extension:Extension",
]);
const placementOf = (run: ProgramRun, placement: string) =>
  run.registrations.filter((r) => r.name === placement || r.name.startsWith(`${placement}-`));

describe("program: a declared move, then the switch", () => {
  let moving: ProgramRun;
  let switched: ProgramRun;

  it("declares the target placement on the target cluster beside the source, credentials still on the source", async () => {
    moving = await runProgram("local", [
      { id: "acme", tier: "standard", extra: "move:\n  to: premium\n" },
      { id: "globex", tier: "premium" },
    ]);
    const source = placementOf(moving, "acme@standard");
    const target = placementOf(moving, "acme@premium");
    assert.equal(source.length, 19);
    assert.equal(target.length, 19);
    assert.deepEqual(
      target.map((r) => r.name.replace("acme@premium", "P")),
      source.map((r) => r.name.replace("acme@standard", "P")),
    );
    for (const r of target.filter((r) => r.type !== "pg-tenants:index:TenantPlacement")) {
      assert.match(r.provider ?? "", /::cluster-premium::/, r.name);
    }
    for (const r of source.filter((r) => r.type !== "pg-tenants:index:TenantPlacement")) {
      assert.match(r.provider ?? "", /::cluster-standard::/, r.name);
    }
    assert.deepEqual(unwrapSecrets(moving.mocks.named("acme@premium-db").inputs), {
      name: "tenant_acme",
      owner: "tenant_acme_owner",
      template: "customer_template_v1",
      connectionLimit: 102,
      allowConnections: true,
      isTemplate: false,
    });
    for (const db of ["acme@standard-db", "acme@premium-db"]) {
      const seen = moving.options.get(db);
      assert.equal(seen?.protect, true, db);
      assert.equal(seen?.retainOnDelete, true, db);
    }
    // One set of passwords and one key serve both placements.
    assert.equal(
      ofTenant(moving.registrations, "acme").filter(
        (r) => r.type === "random:index/randomPassword:RandomPassword",
      ).length,
      2,
    );
    const credentials = (await resolve(moving.outputs.credentials!)).value;
    assert.equal(credentials.acme.rw.port, 55432);
    assert.ok(
      moving.outputs.pgHba.premium.includes(
        "host tenant_acme +tenant_acme 127.0.0.1/32 scram-sha-256",
      ),
    );
    assert.ok(
      moving.outputs.pgHba.standard.includes(
        "host tenant_acme +tenant_acme 127.0.0.1/32 scram-sha-256",
      ),
    );
  });

  it("after the switch, declares the same target resources with identical inputs and no source placement", async () => {
    switched = await runProgram("local", [
      { id: "acme", tier: "premium" },
      { id: "globex", tier: "premium" },
    ]);
    assert.deepEqual(placementOf(switched, "acme@standard"), []);
    // By name: the order of registration follows when each login's verifier is computed.
    const declared = (run: typeof moving) =>
      placementOf(run, "acme@premium")
        .map((r) => [r.name, r.type, unwrapSecrets(r.inputs), r.provider])
        .sort(([a], [b]) => String(a).localeCompare(String(b)));
    assert.deepEqual(declared(switched), declared(moving));
    const credentials = (await resolve(switched.outputs.credentials!)).value;
    assert.equal(credentials.acme.rw.port, 55433);
    assert.ok(!switched.outputs.pgHba.standard.includes("tenant_acme"));
  });
});

describe("program: editing tier alone", () => {
  it("renames the placement, so the engine would have to delete the protected source database, which it refuses", async () => {
    const before = await runProgram("local", [{ id: "acme", tier: "standard" }]);
    const after = await runProgram("local", [{ id: "acme", tier: "premium" }]);
    const dbs = (run: ProgramRun) =>
      run.registrations
        .filter((r) => r.type === "postgresql:index/database:Database")
        .map((r) => r.name);
    assert.deepEqual(dbs(before), ["acme@standard-db"]);
    assert.deepEqual(dbs(after), ["acme@premium-db"]);
    // acme@standard-db leaves the program: a delete the engine plans, and refuses for a protected resource.
    assert.equal(before.options.get("acme@standard-db")?.protect, true);
    assert.equal(before.options.get("acme@standard-db")?.retainOnDelete, true);
    assert.deepEqual(before.options.get("acme@standard-db")?.ignoreChanges, ["template"]);
    assert.ok(
      placementOf(before, "acme@standard").every((r) => PLACEMENT_TYPES.has(r.type)),
      "every resource of the source placement is named after it",
    );
  });

  it("is refused by the check unless the base declared that move", () => {
    const entries = (files: SourceFile[]) => readManifestEntries(files);
    const alone = diffManifests(entries([file("acme")]), entries([file("acme", "", "premium")]));
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
      entries([file("acme", "move:\n  to: premium\n")]),
      entries([file("acme", "", "premium")]),
    );
    assert.deepEqual(declared.violations, []);
    const elsewhere = diffManifests(
      entries([file("acme", "move:\n  to: premium\n")]),
      entries([file("acme", "", "gold")]),
    );
    assert.deepEqual(
      elsewhere.violations.map((v) => v.rule),
      ["tier-changed-only-by-move"],
    );
    const declaring = diffManifests(
      entries([file("acme")]),
      entries([file("acme", "move:\n  to: premium\n")]),
    );
    assert.deepEqual(declaring.violations, []);
  });
});

describe("program: an offboarded tenant", () => {
  it("declares NOLOGIN logins, no CONNECT for the group, the database and key kept, no pg_hba line", async () => {
    const run = await runProgram("local", [
      { id: "acme", tier: "standard", extra: "state: offboarded\noffboardedAt: 2026-11-01\n" },
      { id: "initech", tier: "standard" },
    ]);
    const inputs = (name: string) =>
      unwrapSecrets(run.mocks.named(name).inputs) as Record<string, unknown>;
    assert.equal(inputs("acme@standard-role-rw").login, false);
    assert.equal(inputs("acme@standard-role-ro").login, false);
    assert.equal(inputs("initech@standard-role-rw").login, true);
    assert.deepEqual(inputs("acme@standard-grant-group-connect").privileges, []);
    assert.deepEqual(inputs("initech@standard-grant-group-connect").privileges, ["CONNECT"]);
    assert.equal(inputs("acme@standard-db").allowConnections, true);
    assert.equal(run.options.get("acme@standard-db")?.protect, true);
    assert.equal(run.registrations.filter((r) => r.name === "acme-key-data").length, 1);
    assert.ok(!run.outputs.pgHba.standard.includes("tenant_acme"));
    assert.equal(
      ofTenant(run.registrations, "acme").length,
      ofTenant(run.registrations, "initech").length,
    );
  });
});

describe("operator steps the commands print", () => {
  const cfg = localConfig();
  const model = buildTenantModel(tenant(), cfg);

  it("names the placement and tenant URNs the engine uses", () => {
    assert.equal(
      placementUrn("production", model),
      "urn:pulumi:production::pg-tenants::pg-tenants:index:Tenant$pg-tenants:index:TenantPlacement::acme@standard",
    );
    assert.equal(
      tenantUrn("production", model),
      "urn:pulumi:production::pg-tenants::pg-tenants:index:Tenant::acme",
    );
    assert.deepEqual(nextSteps("production", model, "premium").slice(3, 4), [
      "       pulumi state delete --stack production --force --target-dependents 'urn:pulumi:production::pg-tenants::pg-tenants:index:Tenant$pg-tenants:index:TenantPlacement::acme@standard'",
    ]);
  });

  it("schedules the KMS key deletion with the stack's window on aws-kms stacks", () => {
    const prod = parseStackConfig("production", readStackFile("production").raw);
    const lines = purgeNextSteps(prod, buildTenantModel(tenant(), prod));
    assert.ok(
      lines.includes(
        "       aws kms schedule-key-deletion --key-id alias/pg-tenants/production/acme --pending-window-in-days 30",
      ),
    );
    assert.ok(
      lines.includes(
        "       aws secretsmanager delete-secret --secret-id pg-tenants/production/acme/rw --recovery-window-in-days 7",
      ),
    );
    assert.ok(!purgeNextSteps(cfg, model).some((l) => l.includes("aws kms")));
  });

  it("counts retention in calendar days from offboardedAt", () => {
    assert.equal(retentionEnd("2026-11-01", 30), "2026-12-01");
    assert.equal(retentionEnd("2026-02-27", 2), "2026-03-01");
    assert.equal(retentionEnd("2026-11-01", 0), "2026-11-01");
  });

  it("swaps a restore in by renaming, never dropping", () => {
    assert.deepEqual(
      swapStatements(
        "tenant_acme",
        "tenant_acme_restore_20261126070000",
        "tenant_acme_replaced_20261126070000",
      ),
      [
        "ALTER DATABASE tenant_acme ALLOW_CONNECTIONS false;",
        "-- wait until SELECT count(*) FROM pg_stat_activity WHERE datname = 'tenant_acme' is 0 (or end those sessions)",
        "ALTER DATABASE tenant_acme RENAME TO tenant_acme_replaced_20261126070000;",
        "ALTER DATABASE tenant_acme_restore_20261126070000 RENAME TO tenant_acme;",
      ],
    );
  });

  it("rewrites the tenant file after a move keeping its comments and other fields", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-rewrite-"));
    const f = path.join(dir, "acme.yaml");
    fs.writeFileSync(
      f,
      "# yaml-language-server: $schema=./tenant.schema.json\nid: acme\n# the customer\ndisplayName: Acme\ntier: standard\nmove:\n  to: premium\nlimits:\n  connectionLimit: 5\n",
    );
    rewriteTenantFile(f, "premium");
    assert.equal(
      fs.readFileSync(f, "utf8"),
      "# yaml-language-server: $schema=./tenant.schema.json\nid: acme\n# the customer\ndisplayName: Acme\ntier: premium\nlimits:\n  connectionLimit: 5\n",
    );
    fs.rmSync(dir, { recursive: true });
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

describe("what a failed move reports", () => {
  const cfg = localConfig();
  const model = buildTenantModel(tenant(), cfg);
  const report = (emptied: string, thawed: string) =>
    abandonReport({
      id: "acme",
      from: "standard",
      to: "premium",
      database: "tenant_acme",
      emptied,
      thawed,
    });

  it("says which of emptying the target and restoring the logins happened", () => {
    assert.equal(
      report("skipped", "done"),
      "the move was abandoned: the target database on cluster premium was left empty (the load was rolled back), the source on cluster standard serves as before (logins restored); fix the cause and run npm run move -- acme again",
    );
    assert.equal(
      report("connection terminated", "done"),
      "the move was abandoned: emptying the target database tenant_acme on cluster premium failed (connection terminated): it still holds the copied rows; run npm run move -- acme --abort again to empty it, the source on cluster standard serves as before (logins restored); fix the cause and run npm run move -- acme again",
    );
    assert.equal(
      report("done", "connection terminated"),
      "the move was abandoned: the target database on cluster premium was emptied again, the source on cluster standard does not serve yet: giving it back failed (connection terminated); fix the cause and run npm run move -- acme again",
    );
  });

  it("states exactly where an interrupted move stands, and the one command for each way out", () => {
    const row = {
      tenant: "acme",
      fromTier: "standard",
      toTier: "premium",
      database: "tenant_acme",
    } as const;
    assert.deepEqual(
      (["frozen", "copied", "closed", "aborting"] as const).map((phase) =>
        stateReport({ ...row, phase }, "tenants/acme.yaml"),
      ),
      [
        "state: its logins are NOLOGIN on cluster standard: tenant acme is served nowhere; the target database tenant_acme on cluster premium holds no verified copy yet.",
        "state: its logins are NOLOGIN on cluster standard: tenant acme is served nowhere; the target database tenant_acme on cluster premium holds the verified copy; the source still allows connections; tenants/acme.yaml is unchanged.",
        "state: the source database tenant_acme on cluster standard is closed (ALLOW_CONNECTIONS false, logins NOLOGIN) and the target on cluster premium holds the verified copy; tenant acme is served nowhere until tenants/acme.yaml says tier: premium and pulumi up runs.",
        "state: tenant acme serves from cluster standard again (logins restored); the target database on cluster premium may still hold a copy.",
      ],
    );
    assert.equal(
      resumeHint(row),
      "run npm run move -- acme to finish the move, or npm run move -- acme --abort to serve from cluster standard again",
    );
    assert.ok(model.id === "acme");
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

describe("pg_dump versions", () => {
  it("reads the version pg_dump reports", () => {
    assert.equal(
      parseToolVersion("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
      "15.18",
    );
    assert.equal(parseToolVersion("pg_restore (PostgreSQL) 17.2\n"), "17.2");
    assert.equal(parseToolVersion("something else"), undefined);
  });

  it("refuses a pg_dump older than the server with what to install, and accepts an equal or newer one", () => {
    const tool: PgTool = { name: "pg_dump", path: "/usr/bin/pg_dump", version: "15.18", major: 15 };
    assert.throws(
      () => requireToolForServer(tool, 17, "premium"),
      new CommandError(
        'pg_dump 15.18 (/usr/bin/pg_dump) is older than PostgreSQL 17 of cluster "premium" and refuses it: install postgresql-client-17 (or newer) or set PGTENANTS_PG_BIN to the bin folder of version 17+',
      ),
    );
    requireToolForServer(tool, 15, "standard");
    requireToolForServer(tool, 14, "standard");
  });
});

describe("sealed dumps", () => {
  const key = Buffer.alloc(32, 3);
  const sealing = { key, header: { keySource: "local" as const } };

  it("round-trips, keeps no plaintext, and refuses a wrong key or an altered byte anywhere", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-seal-"));
    const plain = path.join(dir, "plain");
    const content = Buffer.concat([Buffer.from("PGDMP secret rows "), Buffer.alloc(3 << 20, 7)]);
    fs.writeFileSync(plain, content);
    const sealed = path.join(dir, "sealed");
    const header = sealFile(plain, sealed, "acme", sealing, new Date("2026-11-26T00:00:00Z"));
    assert.equal(header.tenant, "acme");
    assert.equal(isSealed(sealed), true);
    assert.equal(isSealed(plain), false);
    const bytes = fs.readFileSync(sealed);
    assert.equal(bytes.includes(Buffer.from("secret rows")), false);
    assert.equal((fs.statSync(sealed).mode & 0o777).toString(8), "600");

    unsealFile(sealed, path.join(dir, "out"), key);
    assert.ok(fs.readFileSync(path.join(dir, "out")).equals(content));

    const refused = (file: string, k: Buffer) =>
      assert.throws(
        () => unsealFile(file, path.join(dir, `out-${path.basename(file)}`), k),
        new CommandError(
          `${file} does not decrypt: wrong data key, or the file was altered or truncated`,
        ),
      );
    refused(sealed, Buffer.alloc(32, 4));
    for (const [name, at] of [
      ["body", bytes.length >> 1],
      ["tag", bytes.length - 1],
      ["header", bytes.indexOf(Buffer.from('"acme"')) + 2],
    ] as const) {
      const altered = Buffer.from(bytes);
      altered[at] ^= 1;
      const f = path.join(dir, `altered-${name}`);
      fs.writeFileSync(f, altered);
      if (name === "header") {
        // The tenant named in the header is authenticated: "acme" turned "abme" does not decrypt.
        assert.equal(readSealHeader(f).header.tenant, "abme");
      }
      refused(f, key);
      assert.equal(fs.existsSync(path.join(dir, `out-altered-${name}`)), false);
    }
    fs.rmSync(dir, { recursive: true });
  });
});

describe("sealing keys per key provider", () => {
  it("aws-kms: a fresh data key under the tenant's own key, only its ciphertext kept, the same context to open", async () => {
    // AWS is out of reach here: a recording KMS client stands in for @aws-sdk/client-kms.
    const calls: string[] = [];
    const kms = async (): Promise<KmsLike> => ({
      async generateDataKey(keyId, context) {
        calls.push(`generate ${keyId} ${JSON.stringify(context)}`);
        return { plaintext: Buffer.alloc(32, 9), ciphertext: Buffer.from("kms-ciphertext") };
      },
      async decrypt(ciphertext, context) {
        calls.push(`decrypt ${ciphertext.toString()} ${JSON.stringify(context)}`);
        return Buffer.alloc(32, 9);
      },
    });
    const prod = parseStackConfig("production", readStackFile("production").raw);
    const model = buildTenantModel(tenant(), prod);
    const sealing = await sealingKey(prod, model, {}, kms);
    assert.deepEqual(sealing.header, {
      keySource: "aws-kms",
      keyId: "alias/pg-tenants/production/acme",
      encryptedDataKey: Buffer.from("kms-ciphertext").toString("base64"),
    });
    const key = await openingKey(
      { alg: "aes-256-gcm", tenant: "acme", iv: "", createdAt: "", ...sealing.header },
      {},
      kms,
    );
    assert.ok(key.equals(Buffer.alloc(32, 9)));
    assert.deepEqual(calls, [
      'generate alias/pg-tenants/production/acme {"tenant":"acme","purpose":"final-dump"}',
      'decrypt kms-ciphertext {"tenant":"acme","purpose":"final-dump"}',
    ]);
  });

  it("local: the tenant's data key from PGTENANTS_DATA_KEY_<ID>, refused when missing or not 32 bytes", async () => {
    const cfg = localConfig();
    const model = buildTenantModel(tenant(), cfg);
    const key = Buffer.alloc(32, 5).toString("base64");
    const sealing = await sealingKey(cfg, model, { PGTENANTS_DATA_KEY_ACME: key });
    assert.deepEqual(sealing.header, { keySource: "local" });
    assert.equal(sealing.key.toString("base64"), key);
    await assert.rejects(
      sealingKey(cfg, model, {}),
      new CommandError(
        "no data key for tenant acme: set PGTENANTS_DATA_KEY_ACME to the stack output credentials.acme.dataKey (pulumi stack output --show-secrets credentials)",
      ),
    );
    await assert.rejects(
      sealingKey(cfg, model, { PGTENANTS_DATA_KEY_ACME: "c2hvcnQ=" }),
      new CommandError(
        "PGTENANTS_DATA_KEY_ACME must be the base64 of 32 bytes (the tenant's data key)",
      ),
    );
  });
});
