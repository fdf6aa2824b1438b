import * as fs from "fs";
import * as path from "path";
import * as postgresql from "@pulumi/postgresql";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";

/**
 * The straightforward program the scale figures are compared with: top-level code, one provider,
 * and per tenant 4 roles, a database and 8 grants (13 resources), each grant chained after the
 * one before. No components, no model, no validation. Used by `npm run bench` only.
 */
const config = new pulumi.Config("pg-tenants");
const dir = config.require("tenantsDir");
const provider = new postgresql.Provider("pg", {
  host: "127.0.0.1",
  port: 5432,
  username: "postgres",
  superuser: false,
});

for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".yaml"))) {
  const tenant = parse(fs.readFileSync(path.join(dir, file), "utf8")) as { id: string };
  const base = `tenant_${tenant.id}`;
  const opts = { provider };
  const group = new postgresql.Role(`${tenant.id}-group`, { name: base }, opts);
  const owner = new postgresql.Role(`${tenant.id}-owner`, { name: `${base}_owner` }, opts);
  const rw = new postgresql.Role(
    `${tenant.id}-rw`,
    { name: `${base}_rw`, login: true, roles: [group.name], password: "x".repeat(40) },
    opts,
  );
  const ro = new postgresql.Role(
    `${tenant.id}-ro`,
    { name: `${base}_ro`, login: true, roles: [group.name], password: "y".repeat(40) },
    opts,
  );
  const db = new postgresql.Database(`${tenant.id}-db`, { name: base, owner: owner.name }, opts);
  const grants: Array<[string, pulumi.Input<string>, string, string[], string?]> = [
    ["public", "public", "database", []],
    ["connect", group.name, "database", ["CONNECT"]],
    ["usage", group.name, "schema", ["USAGE"], "app"],
    ["rw-tables", rw.name, "table", ["SELECT", "INSERT", "UPDATE", "DELETE"], "app"],
    ["rw-sequences", rw.name, "sequence", ["SELECT", "UPDATE", "USAGE"], "app"],
    ["ro-tables", ro.name, "table", ["SELECT"], "app"],
    ["ro-sequences", ro.name, "sequence", ["SELECT"], "app"],
    ["owner-connect", owner.name, "database", ["CONNECT"]],
  ];
  let previous: pulumi.Resource = db;
  for (const [key, role, objectType, privileges, schema] of grants) {
    previous = new postgresql.Grant(
      `${tenant.id}-grant-${key}`,
      { role, database: db.name, schema, objectType, privileges },
      { provider, dependsOn: [previous] },
    );
  }
}
