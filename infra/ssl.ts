/**
 * libpq's sslmodes, stated once: the stack config, the client, the day-two tools and the policy
 * pack import them.
 */

/** Every sslmode libpq knows, weakest first. */
export const PG_SSL_MODES = [
  "disable",
  "allow",
  "prefer",
  "require",
  "verify-ca",
  "verify-full",
] as const;
export type PgSslMode = (typeof PG_SSL_MODES)[number];

/**
 * The sslmodes a stack and the client accept: a connection is either in plain text on purpose
 * or encrypted. `allow`/`prefer` (TLS only if the server offers it) are refused: a downgrade
 * must not be silent.
 */
export const SSL_MODES = [
  "disable",
  "require",
  "verify-ca",
  "verify-full",
] as const satisfies readonly PgSslMode[];
export type SslMode = (typeof SSL_MODES)[number];

/** The accepted modes that encrypt: what the policy pack requires outside local stacks. */
export const ENCRYPTED_SSL_MODES = SSL_MODES.filter((m) => m !== "disable");
