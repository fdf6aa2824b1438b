import type { Policies } from "@pulumi/policy";
import { clusterProviderSettings } from "./policies/cluster-provider-settings";
import { credentialsEncryptedWithOwnKey } from "./policies/credentials-encrypted-with-own-key";
import { loginRoleLimits } from "./policies/login-role-limits";
import { loginRoleSecretPasswords } from "./policies/login-role-secret-passwords";
import { noAllPrivileges } from "./policies/no-all-privileges";
import { noPublicGrants } from "./policies/no-public-grants";
import { oneKeyPerTenant } from "./policies/one-key-per-tenant";
import { tenantDatabaseAcl } from "./policies/tenant-database-acl";
import { tenantDatabaseSettings } from "./policies/tenant-database-settings";
import { tenantGrantPrivileges } from "./policies/tenant-grant-privileges";
import { tenantKeySettings } from "./policies/tenant-key-settings";
import { tenantResourcesScoped } from "./policies/tenant-resources-scoped";
import { tenantRoleAttributes } from "./policies/tenant-role-attributes";
import { tenantRoleMemberships } from "./policies/tenant-role-memberships";

/** The pack's name, as `pulumi preview --policy-pack policy` reports it. */
export const PACK_NAME = "pg-tenants";

/**
 * Every policy of the pack. Listed here, apart from index.ts, so that the offline check and the
 * tests run exactly these policies without starting the pack's gRPC server.
 */
export const policies: Policies = [
  tenantRoleAttributes,
  loginRoleLimits,
  loginRoleSecretPasswords,
  tenantRoleMemberships,
  noPublicGrants,
  noAllPrivileges,
  tenantDatabaseAcl,
  tenantGrantPrivileges,
  tenantDatabaseSettings,
  clusterProviderSettings,
  tenantKeySettings,
  oneKeyPerTenant,
  credentialsEncryptedWithOwnKey,
  tenantResourcesScoped,
];
