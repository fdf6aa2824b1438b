import type { PolicyConfigSchema, PolicyResource, StackValidationPolicy } from "@pulumi/policy";
import { GROUP_DATABASE_PRIVILEGES, PUBLIC_GRANTEE } from "../../infra/model";
import { tenantNames } from "../../infra/naming";
import { configOf, isTrue, known, NAME_PREFIX_SCHEMA, tenantOfName, TYPES } from "../tenancy";

const configSchema: PolicyConfigSchema = { properties: { ...NAME_PREFIX_SCHEMA } };

interface Config {
  namePrefix: string;
}

/**
 * CREATE DATABASE gives PUBLIC CONNECT and TEMP on the new database whatever the template says:
 * until the revoke runs, every role of the cluster, other tenants' logins included, may connect.
 * Each tenant database therefore needs both grants of the model: the revoke from PUBLIC and
 * CONNECT for its tenant's group.
 */
export const tenantDatabaseAcl: StackValidationPolicy = {
  name: "tenant-database-acl",
  description:
    "Every tenant database has its PUBLIC revoke (privileges: []) and, unless the tenant is offboarded, grants CONNECT to its tenant's group.",
  enforcementLevel: "mandatory",
  configSchema,
  validateStack: (args, reportViolation) => {
    const { namePrefix } = configOf<Config>(args, configSchema);
    const databaseGrants = args.resources.filter(
      (r) => r.type === TYPES.grant && known(() => r.props.objectType) === "database",
    );
    // Indexed once: a fleet has thousands of grants and roles.
    const grantsByDatabase = new Map<string, PolicyResource[]>();
    for (const g of databaseGrants) {
      const key = String(known(() => g.props.database));
      grantsByDatabase.set(key, [...(grantsByDatabase.get(key) ?? []), g]);
      for (const d of g.propertyDependencies?.database ?? []) {
        if (d.urn !== key) grantsByDatabase.set(d.urn, [...(grantsByDatabase.get(d.urn) ?? []), g]);
      }
    }
    const rolesByName = new Map<string, PolicyResource[]>();
    for (const r of args.resources) {
      if (r.type !== TYPES.role) continue;
      const key = String(known(() => r.props.name));
      rolesByName.set(key, [...(rolesByName.get(key) ?? []), r]);
    }
    for (const db of args.resources) {
      if (db.type !== TYPES.database) continue;
      const name = known(() => db.props.name);
      const tenant = tenantOfName(namePrefix, name);
      if (tenant === undefined) continue;
      const group = tenantNames(namePrefix, tenant).group;
      const candidates = new Set([
        ...(grantsByDatabase.get(db.urn) ?? []),
        ...(grantsByDatabase.get(String(name)) ?? []),
      ]);
      const grants = [...candidates].filter((g) => isOn(g, db, name));
      const roleOf = (g: PolicyResource) => String(known(() => g.props.role)).toLowerCase();
      const privilegesOf = (g: PolicyResource) =>
        ((known(() => g.props.privileges) ?? []) as string[]).map((p) => p.toUpperCase());

      if (!grants.some((g) => roleOf(g) === PUBLIC_GRANTEE && privilegesOf(g).length === 0)) {
        reportViolation(
          `Tenant database ${name} must revoke PUBLIC's privileges (a Grant to public on the database with privileges: []).`,
          db.urn,
        );
      }
      // An offboarded tenant is closed: its logins are NOLOGIN and its group has lost CONNECT on
      // purpose (see infra/model.ts). The PUBLIC revoke stays required.
      const names = tenantNames(namePrefix, tenant);
      const logins = [names.rw, names.ro]
        .flatMap((n) => rolesByName.get(n) ?? [])
        .filter((r) => r.provider?.urn === db.provider?.urn);
      if (logins.length > 0 && logins.every((r) => !isTrue(known(() => r.props.login)))) continue;
      const needed = [...GROUP_DATABASE_PRIVILEGES];
      if (
        !grants.some((g) => roleOf(g) === group && needed.every((p) => privilegesOf(g).includes(p)))
      ) {
        reportViolation(
          `Tenant database ${name} must grant ${needed.join(", ")} to its tenant's group ${group}.`,
          db.urn,
        );
      }
    }
  },
};

/** A grant is on the database when its `database` input comes from it, or names it on its cluster. */
function isOn(grant: PolicyResource, db: PolicyResource, name: unknown): boolean {
  if ((grant.propertyDependencies?.database ?? []).some((d) => d.urn === db.urn)) return true;
  const sameCluster = grant.provider?.urn === db.provider?.urn;
  return sameCluster && name !== undefined && known(() => grant.props.database) === name;
}
