import type { PolicyProviderResource } from "@pulumi/policy";
import { TENANT_TAG } from "../../infra/model";
import { tenantNames } from "../../infra/naming";
import { TYPES } from "../../policy/tenancy";
import type { Registration } from "../../tools/check/record";

/**
 * Fixtures for policy tests: resources as the check records the program's registrations
 * (tools/check/record.ts), built by hand; test/policy/run.ts runs policies over them with the
 * check's runner. URNs have the engine's shape, parent types first.
 */

export const STACK = "production";
export const PROJECT = "pg-tenants";
export const PREFIX = "tenant_";

/** Parent type chains of the program's components. */
export const IN = {
  top: [] as string[],
  tenant: ["pg-tenants:index:Tenant"],
  placement: ["pg-tenants:index:Tenant", "pg-tenants:index:TenantPlacement"],
  key: ["pg-tenants:index:Tenant", "pg-tenants:index:TenantKey"],
  credentials: ["pg-tenants:index:Tenant", "pg-tenants:index:TenantCredentials"],
};

export function urnOf(
  type: string,
  name: string,
  parents: readonly string[] = [],
  stack = STACK,
): string {
  return `urn:pulumi:${stack}::${PROJECT}::${[...parents, type].join("$")}::${name}`;
}

/** One resource as a fixture: what a policy can see of it. */
export interface Fixture {
  type: string;
  name: string;
  props: Record<string, unknown>;
  parents?: readonly string[];
  stack?: string;
  protect?: boolean;
  provider?: PolicyProviderResource;
}

/** A fixture among the stack's resources, with the URNs its inputs come from (see `link`). */
export interface StackFixture extends Fixture {
  urn: string;
  dependencies: string[];
  propertyDependencies: Record<string, string[]>;
}

/** A stack resource; dependencies are filled in by `link`. */
export function stackResource(f: Fixture): StackFixture {
  return {
    ...f,
    urn: urnOf(f.type, f.name, f.parents, f.stack),
    dependencies: [],
    propertyDependencies: {},
  };
}

/** Records that `property` of `resource` comes from `sources` (as an Output of them). */
export function link(resource: StackFixture, property: string, ...sources: StackFixture[]): void {
  const urns = sources.map((s) => s.urn);
  resource.propertyDependencies[property] = [
    ...(resource.propertyDependencies[property] ?? []),
    ...urns,
  ];
  resource.dependencies.push(...urns);
}

/**
 * The fixtures as the check records registrations, in order, then the providers they name that
 * are not among them (a policy sees a provider's inputs through the resources on it). Inputs and
 * state are the fixture's props.
 */
export function registrations(fixtures: readonly (Fixture | StackFixture)[]): Registration[] {
  const registration = (
    urn: string,
    type: string,
    name: string,
    props: Record<string, unknown>,
    more: Partial<Registration> = {},
  ): Registration => ({
    urn,
    type,
    name,
    custom: true,
    inputs: props,
    state: props,
    protect: false,
    ignoreChanges: [],
    aliases: [],
    additionalSecretOutputs: [],
    deleteBeforeReplace: false,
    dependencies: [],
    propertyDependencies: {},
    ...more,
  });
  const out = fixtures.map((f) =>
    registration(
      "urn" in f ? f.urn : urnOf(f.type, f.name, f.parents, f.stack),
      f.type,
      f.name,
      f.props,
      {
        protect: f.protect ?? false,
        ...(f.provider !== undefined ? { provider: f.provider.urn } : {}),
        ...("urn" in f
          ? { dependencies: f.dependencies, propertyDependencies: f.propertyDependencies }
          : {}),
      },
    ),
  );
  const present = new Set(out.map((r) => r.urn));
  for (const f of fixtures) {
    const p = f.provider;
    if (p === undefined || present.has(p.urn)) continue;
    present.add(p.urn);
    out.push(registration(p.urn, p.type, p.name, p.props));
  }
  return out;
}

export const provider = (tier = "standard"): PolicyProviderResource => ({
  type: TYPES.provider,
  name: `cluster-${tier}`,
  urn: urnOf(TYPES.provider, `cluster-${tier}`),
  props: { username: "pgtenants_provisioner", superuser: false, sslmode: "verify-full" },
});

/**
 * Compliant fixtures of one tenant, shaped like the program's registrations (names from
 * infra/naming.ts, privileges from infra/model.ts). Each returns a fresh object to change.
 */
export function tenantFixtures(id: string, tier = "standard") {
  const names = tenantNames(PREFIX, id);
  const placement = `${id}@${tier}`;
  const onCluster = { parents: IN.placement, provider: provider(tier) };
  const role = (kind: "group" | "owner" | "rw" | "ro"): Fixture => ({
    type: TYPES.role,
    name: `${placement}-role-${kind}`,
    ...onCluster,
    props: {
      name: names[kind],
      login: kind === "rw" || kind === "ro",
      inherit: true,
      superuser: false,
      createDatabase: false,
      createRole: false,
      replication: false,
      bypassRowLevelSecurity: false,
      connectionLimit: kind === "rw" || kind === "ro" ? 20 : 0,
      roles: kind === "rw" || kind === "ro" ? [names.group] : [],
      ...(kind === "rw" || kind === "ro" ? { password: `generated-${id}-${kind}` } : {}),
    },
  });
  return {
    names,
    group: () => role("group"),
    owner: () => role("owner"),
    rw: () => role("rw"),
    ro: () => role("ro"),
    provisionerOwner: (): Fixture => ({
      type: TYPES.grantRole,
      name: `${placement}-provisioner-owner`,
      ...onCluster,
      props: { role: "pgtenants_provisioner", grantRole: names.owner, withAdminOption: false },
    }),
    database: (): Fixture => ({
      type: TYPES.database,
      name: `${placement}-db`,
      ...onCluster,
      protect: true,
      props: {
        name: names.database,
        owner: names.owner,
        template: "customer_template_v1",
        connectionLimit: 20,
        allowConnections: true,
        isTemplate: false,
      },
    }),
    publicRevoke: (): Fixture => ({
      type: TYPES.grant,
      name: `${placement}-grant-public-revoke`,
      ...onCluster,
      props: { role: "public", database: names.database, objectType: "database", privileges: [] },
    }),
    groupConnect: (): Fixture => ({
      type: TYPES.grant,
      name: `${placement}-grant-group-connect`,
      ...onCluster,
      props: {
        role: names.group,
        database: names.database,
        objectType: "database",
        privileges: ["CONNECT"],
      },
    }),
    tablesRw: (): Fixture => ({
      type: TYPES.grant,
      name: `${placement}-grant-app-tables-rw`,
      ...onCluster,
      props: {
        role: names.rw,
        database: names.database,
        schema: "app",
        objectType: "table",
        privileges: ["DELETE", "INSERT", "SELECT", "UPDATE"],
      },
    }),
    defaultTablesRo: (): Fixture => ({
      type: TYPES.defaultPrivileges,
      name: `${placement}-default-app-tables-ro`,
      ...onCluster,
      props: {
        role: names.ro,
        database: names.database,
        owner: names.owner,
        schema: "app",
        objectType: "table",
        privileges: ["SELECT"],
      },
    }),
    extension: (): Fixture => ({
      type: TYPES.extension,
      name: `${placement}-ext-pgcrypto`,
      ...onCluster,
      props: {
        name: "pgcrypto",
        database: names.database,
        createCascade: false,
        dropCascade: false,
      },
    }),
    password: (kind: "rw" | "ro"): Fixture => ({
      type: TYPES.randomPassword,
      name: `${id}-${kind}-password`,
      parents: IN.tenant,
      props: { length: 40, special: false },
    }),
    dataKey: (): Fixture => ({
      type: TYPES.randomBytes,
      name: `${id}-key-data`,
      parents: IN.key,
      props: { length: 32 },
    }),
    kmsKey: (): Fixture => ({
      type: TYPES.kmsKey,
      name: `${id}-key-kms`,
      parents: IN.key,
      props: {
        description: `pg-tenants data key of tenant ${id}`,
        enableKeyRotation: true,
        deletionWindowInDays: 30,
        keyUsage: "ENCRYPT_DECRYPT",
        tags: { [TENANT_TAG]: id, "pg-tenants:stack": STACK },
      },
    }),
    alias: (): Fixture => ({
      type: TYPES.kmsAlias,
      name: `${id}-key-alias`,
      parents: IN.key,
      props: { name: `alias/pg-tenants/production/${id}`, targetKeyId: `key-${id}` },
    }),
    ciphertext: (): Fixture => ({
      type: TYPES.kmsCiphertext,
      name: `${id}-key-data-ciphertext`,
      parents: IN.key,
      props: { keyId: `key-${id}`, plaintext: "c2VjcmV0", context: { tenant: id } },
    }),
    secret: (kind: "rw" | "ro"): Fixture => ({
      type: TYPES.secret,
      name: `${id}-credentials-${kind}`,
      parents: IN.credentials,
      props: {
        name: `pg-tenants/production/${id}/${kind}`,
        kmsKeyId: `arn:aws:kms:eu-west-1:123456789012:key/${id}`,
        tags: { [TENANT_TAG]: id, "pg-tenants:stack": STACK, "pg-tenants:login": kind },
      },
    }),
  };
}

/** A copy of a fixture with some props replaced (undefined removes the prop). */
export function withProps(f: Fixture, changes: Record<string, unknown>): Fixture {
  const props = { ...f.props };
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined) delete props[k];
    else props[k] = v;
  }
  return { ...f, props };
}
