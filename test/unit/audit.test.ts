import assert from "node:assert/strict";
import { describe, it } from "@jest/globals";
import { auditFleet } from "../../tools/audit/fleet";
import type { Finding } from "../../tools/audit/invariants";
import { renderReport, summarize } from "../../tools/audit/report";
import type { AclEntry, ClusterSnapshot, ObjectAcl, SchemaRow } from "../../tools/audit/snapshot";
import { parseStackConfig, StackConfig } from "../../infra/config";
import type { Tenant } from "../../infra/manifest";
import { buildFleetModel, FleetModel, TenantModel } from "../../infra/model";
import { readStackFile } from "../../tools/stack";

/**
 * The audit's comparison, pure: a snapshot of a cluster as the program leaves it (built here
 * from what the provider's statements produce), then one tampering at a time, each reported
 * with its tenant and invariant and nothing else.
 */

const cfg: StackConfig = parseStackConfig("local", readStackFile("local").raw);
const PROVISIONER = "pgtenants_provisioner";

const tenant = (id: string, tier: string, extra: Partial<Tenant> = {}): Tenant => ({
  id,
  displayName: id,
  tier,
  state: "active",
  file: `tenants/${id}.yaml`,
  ...extra,
});

/** What a cluster looks like after the program ran for these tenants. */
function provisioned(tier: string, models: readonly TenantModel[]): ClusterSnapshot {
  const dbAcl = (owner: string, extra: AclEntry[]): AclEntry[] => [
    ...["CREATE", "TEMPORARY", "CONNECT"].map((privilege) => ({ grantee: owner, privilege })),
    ...extra,
  ];
  const snap: ClusterSnapshot = {
    tier,
    serverVersion: "17.10",
    roles: [
      {
        name: PROVISIONER,
        superuser: false,
        createdb: true,
        createrole: true,
        replication: false,
        bypassrls: false,
        login: true,
        connectionLimit: -1,
        config: [],
      },
      {
        name: "postgres",
        superuser: true,
        createdb: true,
        createrole: true,
        replication: true,
        bypassrls: true,
        login: true,
        connectionLimit: -1,
        config: [],
      },
    ],
    databases: [
      {
        name: "postgres",
        owner: "postgres",
        allowConnections: true,
        isTemplate: false,
        connectionLimit: -1,
        acl: dbAcl("postgres", [{ grantee: PROVISIONER, privilege: "CONNECT" }]),
      },
      {
        name: "template0",
        owner: "postgres",
        allowConnections: false,
        isTemplate: true,
        connectionLimit: -1,
        acl: dbAcl("postgres", [{ grantee: "PUBLIC", privilege: "CONNECT" }]),
      },
      {
        name: "template1",
        owner: "postgres",
        allowConnections: true,
        isTemplate: true,
        connectionLimit: -1,
        acl: dbAcl("postgres", []),
      },
      {
        name: cfg.template,
        owner: "postgres",
        allowConnections: false,
        isTemplate: true,
        connectionLimit: -1,
        acl: dbAcl("postgres", []),
      },
    ],
    memberships: [],
    hba: "unreadable",
    contents: {},
  };
  for (const m of models) {
    for (const r of m.roles) {
      snap.roles.push({
        name: r.name,
        superuser: false,
        createdb: false,
        createrole: false,
        replication: false,
        bypassrls: false,
        login: r.login,
        connectionLimit: r.connectionLimit,
        config:
          r.statementTimeoutMs === undefined ? [] : [`statement_timeout=${r.statementTimeoutMs}`],
      });
      for (const group of r.memberOf) snap.memberships.push({ role: group, member: r.name });
      snap.memberships.push({ role: r.name, member: PROVISIONER });
    }
    const connect = m.grants
      .find((g) => g.key === "group-connect")!
      .privileges.map((privilege) => ({ grantee: m.names.group, privilege }));
    snap.databases.push({
      name: m.database.name,
      owner: m.database.owner,
      allowConnections: true,
      isTemplate: false,
      connectionLimit: m.database.connectionLimit,
      acl: dbAcl(m.database.owner, connect),
    });
    const objects: ObjectAcl[] = [];
    const owned = (kind: ObjectAcl["kind"], name: string, privileges: string[]) =>
      privileges.map((privilege) => ({
        kind,
        schema: "app",
        name,
        grantee: "pg_database_owner",
        privilege,
      }));
    objects.push(...owned("schema", "app", ["USAGE", "CREATE"]), {
      kind: "schema",
      schema: "app",
      name: "app",
      grantee: m.names.group,
      privilege: "USAGE",
    });
    for (const table of ["customers", "invoices"]) {
      objects.push(
        ...owned("table", table, [
          "SELECT",
          "INSERT",
          "UPDATE",
          "DELETE",
          "TRUNCATE",
          "REFERENCES",
          "TRIGGER",
        ]),
      );
      for (const p of ["DELETE", "INSERT", "SELECT", "UPDATE"])
        objects.push({
          kind: "table",
          schema: "app",
          name: table,
          grantee: m.names.rw,
          privilege: p,
        });
      objects.push({
        kind: "table",
        schema: "app",
        name: table,
        grantee: m.names.ro,
        privilege: "SELECT",
      });
      const seq = `${table}_id_seq`;
      objects.push(...owned("sequence", seq, ["SELECT", "UPDATE", "USAGE"]));
      for (const p of ["SELECT", "UPDATE", "USAGE"])
        objects.push({
          kind: "sequence",
          schema: "app",
          name: seq,
          grantee: m.names.rw,
          privilege: p,
        });
      objects.push({
        kind: "sequence",
        schema: "app",
        name: seq,
        grantee: m.names.ro,
        privilege: "SELECT",
      });
    }
    snap.contents[m.database.name] = {
      extensions: ["pgcrypto", "plpgsql"],
      // As the template leaves them: CREATE on public revoked from PUBLIC.
      schemas: [
        { name: "app", creators: ["pg_database_owner"] },
        { name: "public", creators: ["pg_database_owner"] },
      ],
      objects,
    };
  }
  return snap;
}

function setup(tenants: Tenant[]): { fleet: FleetModel; snaps: ClusterSnapshot[] } {
  const fleet = buildFleetModel(tenants, cfg);
  const snaps = Object.keys(cfg.clusters).map((tier) =>
    provisioned(tier, [...fleet.byTier[tier], ...fleet.movingIn[tier]]),
  );
  return { fleet, snaps };
}

const brief = (findings: Finding[]) =>
  findings.map((f) => `${f.severity} ${f.tier} ${f.tenant ?? "-"} ${f.invariant}: ${f.message}`);
const TENANTS = [
  tenant("acme", "standard"),
  tenant("initech", "standard"),
  tenant("globex", "premium"),
];

/** Audits after one change to the standard cluster's snapshot. */
function after(change: (s: ClusterSnapshot) => void, tenants = TENANTS): string[] {
  const { fleet, snaps } = setup(tenants);
  change(snaps[0]);
  return brief(auditFleet(cfg, fleet, snaps));
}

const UNREADABLE = [
  "notice premium - pg-hba-readable: pg_hba_file_rules is not readable by pgtenants_provisioner; pg_hba rules not checked (CONNECT privileges carry the isolation alone where pg_hba is not managed)",
  "notice standard - pg-hba-readable: pg_hba_file_rules is not readable by pgtenants_provisioner; pg_hba rules not checked (CONNECT privileges carry the isolation alone where pg_hba is not managed)",
];
const db = (s: ClusterSnapshot, name: string) => s.databases.find((d) => d.name === name)!;
const role = (s: ClusterSnapshot, name: string) => s.roles.find((r) => r.name === name)!;

describe("auditFleet", () => {
  it("finds nothing but the unreadable pg_hba on clusters as the program leaves them", () => {
    assert.deepEqual(
      after(() => undefined),
      UNREADABLE,
    );
  });

  const cases: [string, (s: ClusterSnapshot) => void, string[]][] = [
    [
      "PUBLIC granted CONNECT and TEMP",
      (s) =>
        db(s, "tenant_acme").acl.push(
          { grantee: "PUBLIC", privilege: "CONNECT" },
          { grantee: "PUBLIC", privilege: "TEMPORARY" },
        ),
      [
        "violation standard acme public-no-connect-or-temp: PUBLIC holds CONNECT, TEMPORARY on database tenant_acme",
      ],
    ],
    [
      "CREATE on the database granted to PUBLIC",
      (s) => db(s, "tenant_acme").acl.push({ grantee: "PUBLIC", privilege: "CREATE" }),
      [
        "violation standard acme database-privileges: PUBLIC holds CREATE on database tenant_acme; the model grants it nothing",
      ],
    ],
    [
      "CREATE on the database granted to the tenant's own login",
      (s) => db(s, "tenant_acme").acl.push({ grantee: "tenant_acme_rw", privilege: "CREATE" }),
      [
        "violation standard acme database-privileges: tenant_acme_rw holds CREATE on database tenant_acme; the model grants it nothing",
      ],
    ],
    [
      "TEMP and CREATE on the database granted to the group beside its CONNECT",
      (s) =>
        db(s, "tenant_acme").acl.push(
          { grantee: "tenant_acme", privilege: "TEMPORARY" },
          { grantee: "tenant_acme", privilege: "CREATE" },
        ),
      [
        "violation standard acme database-privileges: tenant_acme holds CREATE, TEMPORARY on database tenant_acme; the model grants it CONNECT",
      ],
    ],
    [
      "TEMP on the database granted to another tenant's login",
      (s) =>
        db(s, "tenant_acme").acl.push({ grantee: "tenant_initech_rw", privilege: "TEMPORARY" }),
      [
        "violation standard acme database-privileges: tenant_initech_rw holds TEMPORARY on database tenant_acme; the model grants it nothing",
      ],
    ],
    [
      "CONNECT and CREATE on the database granted to another tenant's login",
      (s) =>
        db(s, "tenant_acme").acl.push(
          { grantee: "tenant_initech_ro", privilege: "CONNECT" },
          { grantee: "tenant_initech_ro", privilege: "CREATE" },
        ),
      [
        "violation standard acme connect-only-for-group: tenant_initech_ro holds CONNECT on database tenant_acme; only tenant_acme may",
        "violation standard acme database-privileges: tenant_initech_ro holds CREATE on database tenant_acme; the model grants it nothing",
      ],
    ],
    [
      "a schema created outside the app schemas",
      (s) =>
        (s.contents.tenant_acme as { schemas: SchemaRow[] }).schemas.push({
          name: "sneaky",
          creators: ["tenant_acme_rw"],
        }),
      [
        "violation standard acme unexpected-schema: schema sneaky in database tenant_acme is not an app schema (app)",
      ],
    ],
    [
      "CREATE on schema public granted to PUBLIC and a login",
      (s) => {
        const schemas = (s.contents.tenant_acme as { schemas: SchemaRow[] }).schemas;
        schemas.find((n) => n.name === "public")!.creators.push("PUBLIC", "tenant_acme_rw");
      },
      [
        "violation standard acme object-privileges: PUBLIC holds CREATE on schema public",
        "violation standard acme object-privileges: tenant_acme_rw holds CREATE on schema public",
      ],
    ],
    [
      "CREATE on the app schema granted to the group",
      (s) =>
        (s.contents.tenant_acme as { objects: ObjectAcl[] }).objects.push({
          kind: "schema",
          schema: "app",
          name: "app",
          grantee: "tenant_acme",
          privilege: "CREATE",
        }),
      ["violation standard acme object-privileges: tenant_acme holds CREATE on schema app"],
    ],
    [
      "another tenant's group granted CONNECT",
      (s) => db(s, "tenant_acme").acl.push({ grantee: "tenant_initech", privilege: "CONNECT" }),
      [
        "violation standard acme connect-only-for-group: tenant_initech holds CONNECT on database tenant_acme; only tenant_acme may",
      ],
    ],
    [
      "the group's CONNECT revoked",
      (s) => {
        db(s, "tenant_acme").acl = db(s, "tenant_acme").acl.filter(
          (a) => a.grantee !== "tenant_acme",
        );
      },
      [
        "violation standard acme connect-only-for-group: tenant_acme lacks CONNECT on database tenant_acme",
      ],
    ],
    [
      "a role made CREATEDB",
      (s) => {
        role(s, "tenant_initech_ro").createdb = true;
      },
      [
        "violation standard initech role-attributes: role tenant_initech_ro has cluster privileges: createdb",
      ],
    ],
    [
      "a login made SUPERUSER and BYPASSRLS",
      (s) => {
        Object.assign(role(s, "tenant_acme_rw"), { superuser: true, bypassrls: true });
      },
      [
        "violation standard acme role-attributes: role tenant_acme_rw has cluster privileges: superuser, bypassrls",
      ],
    ],
    [
      "a group made LOGIN",
      (s) => {
        role(s, "tenant_acme").login = true;
      },
      ["violation standard acme role-login: role tenant_acme is LOGIN, expected NOLOGIN"],
    ],
    [
      "a raised connection limit",
      (s) => {
        role(s, "tenant_acme_ro").connectionLimit = 100;
      },
      [
        "violation standard acme connection-limit: role tenant_acme_ro has connection limit 100, expected 20",
      ],
    ],
    [
      "a statement timeout removed",
      (s) => {
        role(s, "tenant_acme_rw").config = [];
      },
      [
        "violation standard acme statement-timeout: role tenant_acme_rw has statement_timeout unset, expected 30000",
      ],
    ],
    [
      "another tenant's group granted to a login",
      (s) => s.memberships.push({ role: "tenant_initech", member: "tenant_acme_rw" }),
      [
        "violation standard acme membership: role tenant_acme_rw is a member of tenant_initech, a role outside this tenant",
        "violation standard initech membership: role tenant_acme_rw is a member of tenant_initech",
      ],
    ],
    [
      "a login taken out of its group",
      (s) => {
        s.memberships = s.memberships.filter(
          (m) => !(m.role === "tenant_acme" && m.member === "tenant_acme_ro"),
        );
      },
      ["violation standard acme membership: role tenant_acme_ro is not a member of tenant_acme"],
    ],
    [
      "a dropped tenant database",
      (s) => {
        s.databases = s.databases.filter((d) => d.name !== "tenant_acme");
        delete s.contents.tenant_acme;
      },
      [
        "violation standard acme database-exists: database tenant_acme does not exist on cluster standard",
      ],
    ],
    [
      "a dropped role",
      (s) => {
        s.roles = s.roles.filter((r) => r.name !== "tenant_acme_ro");
        s.memberships = s.memberships.filter(
          (m) => m.member !== "tenant_acme_ro" && m.role !== "tenant_acme_ro",
        );
      },
      [
        "violation standard acme role-exists: role tenant_acme_ro does not exist on cluster standard",
      ],
    ],
    [
      "a database given to another owner",
      (s) => {
        // ALTER DATABASE ... OWNER TO moves the owner's implicit privileges along.
        const d = db(s, "tenant_acme");
        d.owner = "tenant_initech_owner";
        d.acl = d.acl.map((a) =>
          a.grantee === "tenant_acme_owner" ? { ...a, grantee: "tenant_initech_owner" } : a,
        );
      },
      [
        "violation standard acme database-owner: database tenant_acme is owned by tenant_initech_owner, expected tenant_acme_owner",
      ],
    ],
    [
      "a database closed by hand",
      (s) => {
        db(s, "tenant_acme").allowConnections = false;
      },
      [
        "violation standard acme database-allow-connections: database tenant_acme has ALLOW_CONNECTIONS false",
      ],
    ],
    [
      "pgcrypto dropped",
      (s) => {
        (s.contents.tenant_acme as { extensions: string[] }).extensions = ["plpgsql"];
      },
      ["violation standard acme extension: extension pgcrypto is missing in database tenant_acme"],
    ],
    [
      "a table granted to PUBLIC",
      (s) =>
        (s.contents.tenant_acme as { objects: ObjectAcl[] }).objects.push({
          kind: "table",
          schema: "app",
          name: "invoices",
          grantee: "PUBLIC",
          privilege: "SELECT",
        }),
      ["violation standard acme object-privileges: PUBLIC holds SELECT on table app.invoices"],
    ],
    [
      "an unreadable database",
      (s) => {
        s.contents.tenant_acme = { error: "permission denied for database tenant_acme" };
      },
      [
        "violation standard acme database-readable: database tenant_acme cannot be inspected: permission denied for database tenant_acme",
      ],
    ],
    [
      "an unknown database",
      (s) =>
        s.databases.push({
          name: "scratch",
          owner: "postgres",
          allowConnections: true,
          isTemplate: false,
          connectionLimit: -1,
          acl: [],
        }),
      [
        "violation standard - orphan-database: database scratch is not explained by any tenant of the manifest",
      ],
    ],
    [
      "a tenant role of no tenant, made superuser",
      (s) =>
        s.roles.push({
          name: "tenant_ghost_rw",
          superuser: true,
          createdb: false,
          createrole: false,
          replication: false,
          bypassrls: false,
          login: true,
          connectionLimit: -1,
          config: [],
        }),
      [
        "violation standard - no-tenant-cluster-privileges: role tenant_ghost_rw has cluster privileges: superuser",
        "violation standard - orphan-role: role tenant_ghost_rw is not explained by any tenant of the manifest",
      ],
    ],
    [
      "PUBLIC allowed to connect to postgres",
      (s) => db(s, "postgres").acl.push({ grantee: "PUBLIC", privilege: "CONNECT" }),
      [
        "violation standard - maintenance-db-no-public-connect: PUBLIC may connect to database postgres",
      ],
    ],
    [
      "the template opened",
      (s) => {
        db(s, cfg.template).allowConnections = true;
      },
      [
        "violation standard - template-accepts-no-connections: template customer_template_v1 accepts connections",
      ],
    ],
    [
      "a restore database awaiting its swap",
      (s) =>
        s.databases.push({
          name: "tenant_acme_restore_20261126070000",
          owner: "tenant_acme_owner",
          allowConnections: true,
          isTemplate: false,
          connectionLimit: 20,
          acl: [],
        }),
      [
        "notice standard acme retained-database: restore database tenant_acme_restore_20261126070000 awaits a swap or removal",
      ],
    ],
  ];
  for (const [what, change, expected] of cases) {
    it(`reports ${what}, and only that`, () => {
      assert.deepEqual(
        after(change),
        [...expected, ...UNREADABLE].sort((a, b) => sortKey(a).localeCompare(sortKey(b))),
      );
    });
  }

  it("checks pg_hba where readable: the tenant's line, nobody else admitted, nothing for all", () => {
    const rules = () => [
      {
        line: 4,
        type: "host",
        databases: ["all"],
        users: [PROVISIONER],
        method: "scram-sha-256",
        error: null,
      },
      {
        line: 5,
        type: "host",
        databases: ["tenant_acme"],
        users: ["+tenant_acme"],
        method: "scram-sha-256",
        error: null,
      },
      {
        line: 6,
        type: "host",
        databases: ["tenant_initech"],
        users: ["+tenant_initech", "tenant_acme_rw"],
        method: "scram-sha-256",
        error: null,
      },
      {
        line: 7,
        type: "host",
        databases: ["all"],
        users: ["tenant_acme_ro"],
        method: "scram-sha-256",
        error: null,
      },
      { line: 8, type: "host", databases: ["all"], users: ["all"], method: "reject", error: null },
    ];
    assert.deepEqual(
      after((s) => {
        s.hba = rules();
      }).filter((l) => !l.includes("premium")),
      [
        "violation standard - pg-hba: pg_hba line 7 admits tenant_acme_ro to all databases",
        "violation standard initech pg-hba: pg_hba line 6 admits tenant_acme_rw to database tenant_initech",
      ],
    );
    assert.deepEqual(
      after((s) => {
        s.hba = rules().filter((r) => r.line !== 5 && r.line !== 7);
      }).filter((l) => l.includes("standard")),
      [
        "violation standard acme pg-hba: no pg_hba line admits +tenant_acme to database tenant_acme",
        "violation standard initech pg-hba: pg_hba line 6 admits tenant_acme_rw to database tenant_initech",
      ],
    );
  });

  it("expects an offboarded tenant closed: NOLOGIN, no CONNECT, no pg_hba line", () => {
    const off = [
      tenant("acme", "standard", { state: "offboarded", offboardedAt: "2026-11-01" }),
      tenant("globex", "premium"),
    ];
    // Provisioned as offboarded: clean.
    assert.deepEqual(
      after(() => undefined, off),
      UNREADABLE,
    );
    // Still open on the cluster (the offboarding not applied): every opening is reported.
    const { fleet, snaps } = setup(off);
    const open = provisioned(
      "standard",
      buildFleetModel([tenant("acme", "standard"), tenant("globex", "premium")], cfg).byTier
        .standard,
    );
    open.hba = [
      {
        line: 5,
        type: "host",
        databases: ["tenant_acme"],
        users: ["+tenant_acme"],
        method: "scram-sha-256",
        error: null,
      },
    ];
    assert.deepEqual(brief(auditFleet(cfg, fleet, [open, snaps[1]])), [
      UNREADABLE[0],
      "violation standard acme connect-only-for-group: tenant_acme holds CONNECT on database tenant_acme; only tenant_acme may",
      "violation standard acme pg-hba: pg_hba lines 5 still admit connections to offboarded database tenant_acme",
      "violation standard acme role-login: role tenant_acme_ro is LOGIN, expected NOLOGIN (tenant offboarded)",
      "violation standard acme role-login: role tenant_acme_rw is LOGIN, expected NOLOGIN (tenant offboarded)",
    ]);
  });

  it("accepts a declared move's target and, once moved, the closed source as retained", () => {
    const moving = [tenant("acme", "standard", { move: { to: "premium" } })];
    assert.deepEqual(
      after(() => undefined, moving),
      UNREADABLE,
    );
    // Moved: acme on premium; the source database on standard closed, its roles NOLOGIN.
    const { fleet, snaps } = setup([tenant("acme", "premium")]);
    const source = provisioned(
      "standard",
      buildFleetModel([tenant("acme", "standard")], cfg).byTier.standard,
    );
    db(source, "tenant_acme").allowConnections = false;
    for (const r of source.roles.filter((r) => r.name.startsWith("tenant_acme"))) r.login = false;
    assert.deepEqual(brief(auditFleet(cfg, fleet, [source, snaps[1]])), [
      UNREADABLE[0],
      UNREADABLE[1],
      "notice standard acme retained-database: database tenant_acme is retained here (connections disallowed) after the tenant moved to premium; remove it when no longer needed",
    ]);
    // The same source still open is an orphan: nothing explains it.
    db(source, "tenant_acme").allowConnections = true;
    assert.ok(
      brief(auditFleet(cfg, fleet, [source, snaps[1]])).includes(
        "violation standard - orphan-database: database tenant_acme is not explained by any tenant of the manifest",
      ),
    );
  });
});

function sortKey(line: string): string {
  const [, tier, tenantId, invariant] = line.split(" ");
  return `${tier} ${tenantId === "-" ? "" : tenantId} ${invariant}`;
}

describe("renderReport", () => {
  const findings: Finding[] = [
    {
      severity: "violation",
      tier: "standard",
      tenant: "acme",
      invariant: "membership",
      message: "role x is a member of y",
    },
    {
      severity: "notice",
      tier: "premium",
      invariant: "pg-hba-readable",
      message: "not readable | at all",
    },
  ];
  const report = summarize("local", 3, ["standard", "premium"], findings, 12);

  it("prints one line per finding and a verdict", () => {
    assert.equal(
      renderReport(report, "text"),
      [
        "audit of stack local: 3 tenant(s) on 2 cluster(s) (standard, premium)",
        "VIOLATION standard acme membership: role x is a member of y",
        "NOTICE    premium (cluster) pg-hba-readable: not readable | at all",
        "FAILED: 1 violation(s), 1 notice(s)",
      ].join("\n"),
    );
  });

  it("renders a markdown table with escaped pipes, and JSON with the counts", () => {
    const md = renderReport(report, "markdown").split("\n");
    assert.equal(md[4], "| violation | standard | acme | membership | role x is a member of y |");
    assert.equal(md[5], "| notice | premium |  | pg-hba-readable | not readable \\| at all |");
    const json = JSON.parse(renderReport(report, "json"));
    assert.equal(json.violations, 1);
    assert.equal(json.notices, 1);
    assert.equal(json.elapsedMs, 12);
  });
});
