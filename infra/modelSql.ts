import type { TenantModel } from "./model";
import { PUBLIC_GRANTEE } from "./model";
import { isLoginKind, LoginKind } from "./naming";
import { quoteIdent } from "./sql";

/**
 * The model as SQL, for every place that must write it outside the provider: restore (the
 * database grants a dump does not carry), the test harness's SQL fleet and the client's scale
 * test (hundreds of tenants without the engine). The provider writes the same objects from the
 * program's resources; test/engine/deploy.test.ts compares the catalogs both leave.
 */

/** A grantee in SQL text: PUBLIC as the keyword, any role validated and quoted. */
export function granteeSql(role: string): string {
  return role === PUBLIC_GRANTEE ? "PUBLIC" : quoteIdent(role);
}

/** A grantee as the catalog's aclexplode rows name it. */
export function catalogGrantee(role: string): string {
  return role === PUBLIC_GRANTEE ? "PUBLIC" : role;
}

/** The model's database grants on `database` (the tenant's, or a restore's new one). */
export function databaseGrantsSql(model: TenantModel, database = model.database.name): string[] {
  const db = quoteIdent(database);
  return model.grants
    .filter((g) => g.objectType === "database")
    .flatMap((g) => [
      `REVOKE ALL PRIVILEGES ON DATABASE ${db} FROM ${granteeSql(g.role)}`,
      ...(g.privileges.length > 0
        ? [`GRANT ${g.privileges.join(", ")} ON DATABASE ${db} TO ${granteeSql(g.role)}`]
        : []),
    ]);
}

/**
 * The tenant's roles, its database and the database grants. `passwords` per login (plain or a
 * SCRAM verifier) go through `literal` (the client's escapeLiteral).
 */
export function tenantSql(
  model: TenantModel,
  passwords: Partial<Record<LoginKind, string>>,
  literal: (value: string) => string,
): string[] {
  const sql: string[] = [];
  for (const role of model.roles) {
    const secret = isLoginKind(role.kind) ? passwords[role.kind] : undefined;
    const password = secret !== undefined ? ` PASSWORD ${literal(secret)}` : "";
    const inRole =
      role.memberOf.length > 0 ? ` IN ROLE ${role.memberOf.map(quoteIdent).join(", ")}` : "";
    sql.push(
      `CREATE ROLE ${quoteIdent(role.name)} WITH ${role.login ? "LOGIN" : "NOLOGIN"} NOSUPERUSER NOCREATEDB NOCREATEROLE ` +
        `NOREPLICATION NOBYPASSRLS CONNECTION LIMIT ${role.connectionLimit}${password}${inRole}`,
    );
    if (role.statementTimeoutMs !== undefined) {
      sql.push(
        `ALTER ROLE ${quoteIdent(role.name)} SET statement_timeout = ${role.statementTimeoutMs}`,
      );
    }
  }
  sql.push(
    `CREATE DATABASE ${quoteIdent(model.database.name)} OWNER ${quoteIdent(model.database.owner)} TEMPLATE ${quoteIdent(model.database.template)} ` +
      // FILE_COPY: hundreds of clones of the template written through the WAL take far longer.
      `CONNECTION LIMIT ${model.database.connectionLimit} STRATEGY FILE_COPY`,
    ...databaseGrantsSql(model),
  );
  return sql;
}

/** The grants inside the tenant's database (schema usage, DML for rw, SELECT for ro). */
export function inDatabaseSql(model: TenantModel): string[] {
  return model.grants
    .filter((g) => g.objectType !== "database")
    .map((g) => {
      const schema = quoteIdent(g.schema ?? "");
      const on =
        g.objectType === "schema"
          ? `SCHEMA ${schema}`
          : `ALL ${g.objectType === "table" ? "TABLES" : "SEQUENCES"} IN SCHEMA ${schema}`;
      return `GRANT ${g.privileges.join(", ")} ON ${on} TO ${granteeSql(g.role)}`;
    });
}
