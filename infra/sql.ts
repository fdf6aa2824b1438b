/**
 * The one way an identifier reaches SQL text in pg-tenants' own tools: validated against the
 * plain-identifier alphabet, then double-quoted. Values always travel as bind parameters.
 */

const SAFE_IDENTIFIER = /^[a-z_][a-z0-9_$]*$/;

/** Quotes a PostgreSQL identifier; refuses anything outside `[a-z_][a-z0-9_$]*` or over 63 bytes. */
export function quoteIdent(name: string): string {
  if (!SAFE_IDENTIFIER.test(name) || Buffer.byteLength(name) > 63) {
    throw new Error(
      `refusing identifier ${JSON.stringify(name)}: only lowercase letters, digits, _ and $ (at most 63 bytes) may reach SQL`,
    );
  }
  return `"${name}"`;
}
