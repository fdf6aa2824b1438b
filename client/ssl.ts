import type { ConnectionOptions } from "tls";
import { SSL_MODES } from "../infra/ssl";

/** The sslmodes the stack config allows (infra/ssl.ts). */
export const SUPPORTED_SSLMODES = SSL_MODES;

export interface TlsTrust {
  /** CA certificate(s) that sign the clusters' server certificates (e.g. the RDS bundle). */
  ca?: string | Buffer | Array<string | Buffer>;
}

/**
 * pg's `ssl` option for a libpq sslmode:
 * - `disable`: no TLS.
 * - `require`: TLS, without checking the certificate (libpq's meaning when no root CA is set).
 * - `verify-ca`: TLS, the chain must lead to a trusted CA; the host name is not compared.
 * - `verify-full`: TLS, trusted chain, and the certificate must name the host connected to.
 * `allow`/`prefer` (TLS only if the server offers it) are refused: a downgrade must not be silent.
 */
export function sslOptions(sslmode: string, trust: TlsTrust = {}): false | ConnectionOptions {
  const ca = trust.ca !== undefined ? { ca: trust.ca } : {};
  switch (sslmode) {
    case "disable":
      return false;
    case "require":
      return { rejectUnauthorized: false };
    case "verify-ca":
      return { ...ca, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case "verify-full":
      // pg sets the SNI server name to the host itself (and leaves it unset for IP addresses).
      return { ...ca, rejectUnauthorized: true };
    default:
      throw new Error(
        `unsupported sslmode ${JSON.stringify(sslmode)}: use one of ${SUPPORTED_SSLMODES.join(", ")}`,
      );
  }
}
