import * as postgresql from "@pulumi/postgresql";
import * as pulumi from "@pulumi/pulumi";
import { isCapabilityRole } from "../containment";
import { CLUSTER_PRIVILEGES, PUBLIC_GRANTEE, TenantModel } from "../model";
import type { LoginKind, RoleKind } from "../naming";
import { databaseOptions } from "../options";

export interface TenantPlacementArgs {
  model: TenantModel;
  /** The cluster's provisioning role: it keeps membership of the owner to manage the database. */
  provisioner: string;
  /** Per login, the password as the server stores it (its SCRAM verifier). */
  passwords: Record<LoginKind, pulumi.Input<string>>;
}

/**
 * A tenant's database, roles, grants and extensions on one cluster. The cluster comes from the
 * `postgresql` provider passed through `providers`; every child inherits it.
 */
export class TenantPlacement extends pulumi.ComponentResource {
  public readonly database: postgresql.Database;
  public readonly roles: Record<RoleKind, postgresql.Role>;

  constructor(name: string, args: TenantPlacementArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pg-tenants:index:TenantPlacement", name, {}, opts);
    const { model } = args;

    const roles = {} as Record<RoleKind, postgresql.Role>;
    for (const spec of model.roles) {
      const password =
        spec.kind === "rw" || spec.kind === "ro" ? args.passwords[spec.kind] : undefined;
      roles[spec.kind] = new postgresql.Role(
        `${name}-role-${spec.kind}`,
        {
          name: spec.name,
          login: spec.login,
          inherit: true,
          ...Object.fromEntries(CLUSTER_PRIVILEGES.map((p) => [p.input, false])),
          connectionLimit: spec.connectionLimit,
          password,
          // Memberships live on the role itself, never also in a GrantRole (#131).
          // The tenant's group as a dependency; the tier's capability roles (cluster roles the
          // bootstrap creates) by name.
          roles: spec.memberOf.map((group) =>
            isCapabilityRole(group) ? group : roleOutput(roles, model, group),
          ),
          statementTimeout: spec.statementTimeoutMs,
        },
        { parent: this },
      );
    }

    // The provisioning role must be able to connect to the database and grant on objects owned
    // by pg_database_owner after PUBLIC's CONNECT is revoked: it stays a member of the owner.
    // On PostgreSQL 16+ the provisioning role also holds the owner through the implicit
    // CREATEROLE grant (ADMIN, granted by the bootstrap superuser). The provider reads whichever
    // membership row comes first, so its state says withAdminOption true; without ignoring that
    // ForceNew attribute every later `pulumi up` would replace this grant, and the replaced
    // grant's deletion (after the new one's creation) would revoke the membership.
    const provisionerOwner = new postgresql.GrantRole(
      `${name}-provisioner-owner`,
      { role: args.provisioner, grantRole: roles.owner.name, withAdminOption: false },
      { parent: this, ignoreChanges: ["withAdminOption"] },
    );

    this.database = new postgresql.Database(
      `${name}-db`,
      {
        name: model.database.name,
        owner: roleOutput(roles, model, model.database.owner),
        template: model.database.template,
        connectionLimit: model.database.connectionLimit,
        allowConnections: true,
        isTemplate: false,
      },
      { parent: this, dependsOn: [provisionerOwner], ...databaseOptions() },
    );

    // Grants on one database run one after another: parallel GRANTs on the same catalog rows
    // fail with "tuple concurrently updated" (TF #178). Children of the database are also
    // deleted with it, which skips pointless REVOKEs at teardown.
    const inDatabase = { parent: this, deletedWith: this.database };
    let previous: pulumi.Resource = this.database;
    for (const g of model.grants) {
      previous = new postgresql.Grant(
        `${name}-grant-${g.key}`,
        {
          role: g.role === PUBLIC_GRANTEE ? PUBLIC_GRANTEE : roleOutput(roles, model, g.role),
          database: this.database.name,
          schema: g.schema,
          objectType: g.objectType,
          privileges: g.privileges,
        },
        { ...inDatabase, dependsOn: [previous] },
      );
    }
    for (const d of model.defaultPrivileges) {
      previous = new postgresql.DefaultPrivileges(
        `${name}-default-${d.key}`,
        {
          role: roleOutput(roles, model, d.role),
          database: this.database.name,
          owner: roleOutput(roles, model, d.owner),
          schema: d.schema,
          objectType: d.objectType,
          privileges: d.privileges,
        },
        { ...inDatabase, dependsOn: [previous] },
      );
    }
    for (const ext of model.extensions) {
      previous = new postgresql.Extension(
        `${name}-ext-${ext}`,
        { name: ext, database: this.database.name, createCascade: false, dropCascade: false },
        { ...inDatabase, dependsOn: [previous] },
      );
    }

    this.roles = roles;
    this.registerOutputs({ database: this.database.name });
  }
}

/** The Role resource's name output for a PostgreSQL role name of this tenant, for dependencies. */
function roleOutput(
  roles: Partial<Record<RoleKind, postgresql.Role>>,
  model: TenantModel,
  roleName: string,
): pulumi.Output<string> {
  const kind = (Object.keys(model.names) as (keyof typeof model.names)[]).find(
    (k) => k !== "database" && model.names[k] === roleName,
  ) as RoleKind | undefined;
  const role = kind === undefined ? undefined : roles[kind];
  if (role === undefined) {
    throw new Error(
      `internal: role ${roleName} of tenant ${model.id} is not declared before its use`,
    );
  }
  return role.name;
}
