import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, it } from "@jest/globals";
import { parseTemplate, templateName } from "../../infra/templates";
import { diffSchemas, describeDifference, normalize } from "../../tools/lib/migrations/drift";
import {
  digestOf,
  loadMigrations,
  MIGRATIONS_DIR,
  stackTemplate,
} from "../../tools/lib/migrations/files";
import { planWaves } from "../../tools/lib/migrations/fleet";
import { planTenant } from "../../tools/lib/migrations/history";
import { migrationPlan, stackMigrationPlan } from "../../tools/lib/migrations/pending";

/**
 * The pure parts of fleet migrations: file naming and versions, the per-tenant plan and its
 * refusals, canary and waves, the drift diff's wording, and the offline check's pending list
 * against a base.
 */

// Made at load: the tables of it.each read the files while tests are collected.
const root = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-migrations-"));
const dir = () => path.join(root, MIGRATIONS_DIR);
const write = (name: string, sql: string, at = dir()) => {
  fs.mkdirSync(at, { recursive: true });
  fs.writeFileSync(path.join(at, name), sql);
};

{
  write("0001_first.sql", "CREATE SCHEMA app;\n");
  write("0002_orders.sql", "CREATE TABLE app.orders (id int);\n");
  write("0003_status.sql", "ALTER TABLE app.orders ADD COLUMN status text;\n");
}
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe("migration files", () => {
  it("are read in order with their version, name and checksum", () => {
    const m = loadMigrations(dir());
    assert.deepEqual(
      m.map((x) => [x.version, x.name]),
      [
        [1, "0001_first"],
        [2, "0002_orders"],
        [3, "0003_status"],
      ],
    );
    assert.match(m[0].checksum, /^[0-9a-f]{64}$/);
  });

  it.each([
    ["0004-bad.sql", "a migration is named NNNN_name.sql"],
    ["0005_gap.sql", "expected migration 0004_*.sql next"],
    ["0004_Upper.sql", "a migration is named NNNN_name.sql"],
  ])("refuse %s, naming the file", (file, message) => {
    const other = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-migrations-bad-"));
    try {
      for (const f of fs.readdirSync(dir()))
        fs.copyFileSync(path.join(dir(), f), path.join(other, f));
      fs.writeFileSync(path.join(other, file), "SELECT 1;\n");
      assert.throws(
        () => loadMigrations(other),
        (e: Error) => {
          assert.ok(e.message.startsWith(path.join(other, file)), e.message);
          assert.ok(e.message.includes(message), e.message);
          return true;
        },
      );
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  it("name template versions <family>_v<N>, and a stack's template must be one of them", () => {
    assert.deepEqual(parseTemplate("customer_template_v12"), {
      family: "customer_template",
      version: 12,
    });
    assert.equal(parseTemplate("customer_template"), undefined);
    assert.equal(parseTemplate("customer_template_v0"), undefined);
    assert.equal(templateName("customer_template", 3), "customer_template_v3");
    const m = loadMigrations(dir());
    assert.deepEqual(stackTemplate("customer_template_v2", "s", m), {
      family: "customer_template",
      version: 2,
    });
    assert.throws(() => stackTemplate("customer_template_v4", "s", m), {
      message:
        "stack s: pg-tenants:template customer_template_v4 is version 4, but there are 3 migration(s); add 0004_*.sql or name customer_template_v3",
    });
    assert.throws(() => stackTemplate("customer_template", "s", m), /names no version/);
  });
});

describe("a tenant's plan", () => {
  const m = () => loadMigrations(dir());
  const state = (history: { name: string; checksum: string | null }[] | null, extra = {}) => ({
    history,
    owner: history === null ? null : "prov",
    grantees: [],
    origin: null,
    ...extra,
  });
  const applied = (n: number) =>
    m()
      .slice(0, n)
      .map((x) => ({ name: x.name, checksum: x.checksum }));

  it("without a history is at version 1 and gets a baseline", () => {
    const p = planTenant(state(null), m(), 3, "prov");
    assert.deepEqual(
      [p.version, p.pending.map((x) => x.name), p.problems, p.needsBaseline],
      [1, ["0002_orders", "0003_status"], [], true],
    );
  });

  it("stops at the stack's version, and is current there", () => {
    assert.deepEqual(
      planTenant(state(applied(1)), m(), 2, "prov").pending.map((x) => x.name),
      ["0002_orders"],
    );
    const current = planTenant(state(applied(2)), m(), 2, "prov");
    assert.deepEqual([current.pending, current.digest], [[], digestOf(applied(2))]);
  });

  it.each([
    [
      "an edited applied file",
      state([{ name: "0001_first", checksum: "0".repeat(64) }]),
      "migration 0001_first was edited after it was applied (its checksum differs from the file's)",
    ],
    [
      "a history out of order",
      state([{ name: "0002_orders", checksum: null }]),
      "history out of order: migration 1 applied is 0002_orders, the file is 0001_first",
    ],
    [
      "a history schema of someone else",
      state(applied(1), { owner: "tenant_acme_owner" }),
      "schema pgtenants_history is owned by tenant_acme_owner, not prov",
    ],
    [
      "a grant on the history",
      state(applied(1), { grantees: ["tenant_acme_rw"] }),
      "tenant_acme_rw holds a privilege on schema pgtenants_history or its tables",
    ],
    [
      "a tenant ahead of the stack",
      state(applied(3)),
      "at version 3, ahead of the stack's template (version 2)",
    ],
  ])("refuses %s", (_what, s, problem) => {
    const p = planTenant(s, m(), 2, "prov");
    assert.deepEqual([p.problems, p.pending], [[problem], []]);
  });
});

describe("canary and waves", () => {
  const t = Array.from({ length: 7 }, (_, i) => ({ id: `t${i}` }));
  const ids = (w: ReturnType<typeof planWaves<{ id: string }>>) =>
    w.map((x) => [x.wave, x.tenants.map((y) => y.id).join(",")]);
  it("put named canaries first, then waves of the given size", () => {
    assert.deepEqual(ids(planWaves(t, ["t3"], 3)), [
      ["canary", "t3"],
      [1, "t0,t1,t2"],
      [2, "t4,t5,t6"],
    ]);
  });
  it("take a canary count from the front; no canary and size 0 is one wave", () => {
    assert.deepEqual(ids(planWaves(t, 2, 4)), [
      ["canary", "t0,t1"],
      [1, "t2,t3,t4,t5"],
      [2, "t6"],
    ]);
    assert.deepEqual(ids(planWaves(t, 0, 0)), [[1, "t0,t1,t2,t3,t4,t5,t6"]]);
  });
});

describe("drift", () => {
  const snap = (columns: object[], indexes: object[] = [], owner = "pg_database_owner") =>
    JSON.stringify({
      datdba: "tenant_acme_owner",
      relations: [{ name: "app.orders", kind: "r", owner }],
      columns,
      indexes,
    });
  const col = (notnull: boolean) => ({
    rel: "app.orders",
    name: "total",
    position: 1,
    type: "bigint",
    notnull,
    default: null,
  });
  it("treats pg_database_owner and the database's owner alike, and names each difference", () => {
    const reference = normalize(snap([col(true)]), {}, []);
    assert.deepEqual(
      diffSchemas(reference, normalize(snap([col(true)], [], "tenant_acme_owner"), {}, [])),
      [],
    );
    const drifted = normalize(
      snap([col(false)], [{ name: "app.hand_idx", def: "CREATE INDEX" }], "tenant_acme_rw"),
      { tenant_acme_rw: "RW" },
      [],
    );
    assert.deepEqual(diffSchemas(reference, drifted).map(describeDifference), [
      "column app.orders.total: notnull true -> false",
      "index app.hand_idx is not in the template",
      'relation app.orders: owner "OWNER" -> "RW"',
    ]);
    assert.deepEqual(
      diffSchemas(drifted, reference).map(describeDifference)[1],
      "index app.hand_idx is missing (the template has it)",
    );
  });
});

describe("the offline check's migrations", () => {
  const stackFile = (at: string, template: string) => {
    fs.mkdirSync(path.join(at, "stacks"), { recursive: true });
    fs.writeFileSync(
      path.join(at, "stacks", "Pulumi.s.yaml"),
      `config:\n  pg-tenants:template: ${template}\n`,
    );
  };
  it("lists what the deploy will apply to existing tenants, against a base folder", () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), "pgtenants-base-"));
    try {
      write("0001_first.sql", "CREATE SCHEMA app;\n", path.join(base, MIGRATIONS_DIR));
      stackFile(base, "customer_template_v1");
      const plan = migrationPlan({ stack: "s", template: "customer_template_v3" }, root, base);
      assert.deepEqual(plan, {
        template: "customer_template_v3",
        version: 3,
        latest: 3,
        baseVersion: 1,
        pending: ["0002_orders", "0003_status"],
        ahead: [],
        problems: [],
      });
      assert.deepEqual(
        migrationPlan({ stack: "s", template: "customer_template_v2" }, root).ahead,
        ["0003_status"],
      );
      write("0001_first.sql", "CREATE SCHEMA app; -- once\n", path.join(base, MIGRATIONS_DIR));
      stackFile(base, "customer_template_v3");
      assert.deepEqual(
        migrationPlan({ stack: "s", template: "customer_template_v2" }, root, base).problems,
        [
          `${path.join(MIGRATIONS_DIR, "0001_first.sql")} changed against ${base}: a released migration is never edited (tenants applied it as it was); add a new one`,
          "pg-tenants:template goes back from customer_template_v3 to customer_template_v2: tenants at version 3 cannot return to 2",
        ],
      );
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  });
  it("is left out where the root has no migrations, and refuses a template naming no version", () => {
    assert.equal(stackMigrationPlan({ stack: "s", template: "t_v1" }, os.tmpdir()), undefined);
    assert.deepEqual(
      stackMigrationPlan({ stack: "s", template: "customer_template_v9" }, root)?.problems,
      [
        "stack s: pg-tenants:template customer_template_v9 is version 9, but there are 3 migration(s); add 0004_*.sql to 0009_*.sql or name customer_template_v3",
      ],
    );
  });
});
