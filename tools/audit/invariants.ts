import { CONTAINMENT_INVARIANTS } from "./containment";

/** What the audit reports: findings, each naming the invariant it breaks. */

export type Severity = "violation" | "notice";

/** Stable names of the invariants, as reports and tests refer to them. */
export const INVARIANTS = {
  databaseExists: "database-exists",
  databaseOwner: "database-owner",
  databaseAllowConnections: "database-allow-connections",
  publicNoConnect: "public-no-connect-or-temp",
  connectOnlyGroup: "connect-only-for-group",
  databasePrivileges: "database-privileges",
  roleExists: "role-exists",
  roleAttributes: "role-attributes",
  roleLogin: "role-login",
  connectionLimit: "connection-limit",
  statementTimeout: "statement-timeout",
  membership: "membership",
  extension: "extension",
  objectPrivileges: "object-privileges",
  unexpectedSchema: "unexpected-schema",
  databaseReadable: "database-readable",
  hba: "pg-hba",
  hbaReadable: "pg-hba-readable",
  noTenantSuperuser: "no-tenant-cluster-privileges",
  maintenancePublicConnect: "maintenance-db-no-public-connect",
  templateClosed: "template-accepts-no-connections",
  orphanDatabase: "orphan-database",
  orphanRole: "orphan-role",
  retained: "retained-database",
  /** Template versions besides the stack's (tools/lib/migrations/templates.ts). */
  templateVersion: "template-version",
  /** A tenant's schema against its template's at the same version (migrate --check). */
  schemaDrift: "schema-drift",
  /** A tenant's migration history: owned by the provisioning role, no grants, files unchanged. */
  migrationHistory: "migration-history",
  /** A tenant behind the stack's template version: migrate has not reached it yet. */
  migrationPending: "migration-pending",
  /** What tenants share: tools/audit/containment.ts. */
  ...CONTAINMENT_INVARIANTS,
} as const;
export type Invariant = (typeof INVARIANTS)[keyof typeof INVARIANTS];

export interface Finding {
  severity: Severity;
  tier: string;
  /** The tenant concerned; absent for cluster-wide findings. */
  tenant?: string;
  invariant: Invariant;
  message: string;
}
