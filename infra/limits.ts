/**
 * Numeric bounds of the model, each stated once: the manifest, the stack config, the policy pack
 * and the audit import them.
 */

/** PostgreSQL's int: the largest value a millisecond setting (statement_timeout ...) stores. */
export const PG_INT_MAX = 2147483647;

/** The most connections one tenant login may be given. */
export const LOGIN_CONNECTION_LIMIT_MAX = 1000;

/**
 * Sessions inside a tenant database kept for the provisioning role (grants, dumps, migrations):
 * the database's connection limit is both logins' limits plus these, so a tenant at its limits
 * never locks the provisioning role out of its database.
 */
export const PROVISIONER_DATABASE_SESSIONS = 2;

/**
 * A KMS key's deletion window in days: what AWS allows, and what it uses when a key declares
 * none. The stack config and the policy pack take their bounds and defaults from here.
 */
export const KMS_DELETION_WINDOW_DAYS = { min: 7, max: 30, awsDefault: 30 } as const;
