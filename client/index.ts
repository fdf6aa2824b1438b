/**
 * pg-tenants for applications: resolve a request to its tenant, then run queries in that
 * tenant's own database as its own rw or ro login, with per-tenant encryption helpers and
 * connection metrics. See TenantConnector.
 */
export { isPasswordRejection, TenantConnector } from "./connector";
export type { TenantClient, TenantConnectorOptions } from "./connector";
export { RESOLVABLE_STATE, statesFromManifest, TenantDirectory } from "./directory";
export type {
  ResolvedTenant,
  TenantDirectoryInput,
  TenantStates,
  TenantSummaryView,
} from "./directory";
export { normalizeHost } from "./host";
export {
  CredentialsCache,
  LocalOutputsCredentials,
  parseCredentials,
  SecretsManagerCredentials,
} from "./credentials";
export type {
  CredentialsOutput,
  CredentialsProvider,
  LoginCredentials,
  SecretsManagerCredentialsOptions,
  Source,
} from "./credentials";
export { DataKeyCache, KmsDataKeys, LocalDataKeys } from "./keys";
export type { DataKeyProvider, KmsDataKeysOptions } from "./keys";
export { DECRYPT_SQL, ENCRYPT_SQL, parameterLoggingReasons } from "./crypto";
export type { LogSettings } from "./crypto";
export { renderPrometheus } from "./metrics";
export type { ClientMetrics } from "./metrics";
export { TenantPools } from "./pool";
export type { Lease, PoolLimits, PoolSnapshot } from "./pool";
export { sslOptions, SUPPORTED_SSLMODES } from "./ssl";
export type { TlsTrust } from "./ssl";
export {
  ConnectionWaitError,
  TenantIsolationError,
  TenantResolutionError,
  TenantSecretError,
} from "./errors";
export type { ResolutionFailure } from "./errors";
export type { LoginKind } from "../infra/naming";
