/**
 * Errors the tenant client throws. None of them ever carries a password or a data key: messages
 * name the tenant, the login, the secret or the setting, never a secret value.
 */

/** Why a request could not be mapped to a tenant. */
export type ResolutionFailure = "invalid-input" | "unknown-tenant" | "not-active";

/** A customer id or host that does not name exactly one active tenant. There is no fallback. */
export class TenantResolutionError extends Error {
  constructor(
    public readonly reason: ResolutionFailure,
    message: string,
  ) {
    super(message);
    this.name = "TenantResolutionError";
  }
}

/** Something would make a request run as another tenant, or with a wrong login: refused. */
export class TenantIsolationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TenantIsolationError";
  }
}

/** Credentials or a data key could not be obtained or are malformed. */
export class TenantSecretError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TenantSecretError";
  }
}

/** No connection became free within the acquire timeout, or the client is closed. */
export class ConnectionWaitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConnectionWaitError";
  }
}

/** Quotes untrusted input for an error message, cut to a length that keeps logs readable. */
export function quoteInput(value: unknown, max = 80): string {
  const text = typeof value === "string" ? value : String(value);
  const cut = text.length > max ? `${text.slice(0, max)}...` : text;
  return JSON.stringify(cut);
}
