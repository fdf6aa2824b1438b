import { quoteInput, TenantResolutionError } from "./errors";

/** DNS limits (RFC 1035): 63 bytes per label, 253 for the whole name without its final dot. */
const MAX_LABEL = 63;
const MAX_NAME = 253;
/** Letters, digits, `-` inside, and `_` (tenant ids may contain it; DNS labels may too). */
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/;

/**
 * The canonical form of a request's host: lower case, without the port and without one trailing
 * dot. Refuses anything else rather than guessing: non-ASCII text (an international name must
 * arrive in its punycode `xn--` form, which is compared as is and never decoded), empty labels,
 * a second trailing dot, IP literals with brackets, over-long names.
 */
export function normalizeHost(input: unknown): string {
  if (typeof input !== "string" || input === "") {
    throw invalid(input, "must be a non-empty string");
  }
  if (input.length > MAX_NAME + 7) throw invalid(input, `must be at most ${MAX_NAME} characters`);
  if (/[^\x21-\x7e]/.test(input)) {
    throw invalid(
      input,
      "must be ASCII without spaces; international names arrive in their punycode (xn--) form",
    );
  }
  let host = input.toLowerCase();
  const port = /^(.*):(\d{1,5})$/.exec(host);
  if (port !== null) {
    if (Number(port[2]) > 65535) throw invalid(input, "has a port above 65535");
    host = port[1];
  }
  if (host.endsWith(".")) host = host.slice(0, -1);
  if (host.length > MAX_NAME) throw invalid(input, `must be at most ${MAX_NAME} characters`);
  for (const label of host.split(".")) {
    if (label === "") throw invalid(input, "has an empty label");
    if (label.length > MAX_LABEL)
      throw invalid(input, `has a label longer than ${MAX_LABEL} characters`);
    if (!LABEL.test(label))
      throw invalid(input, "may only contain letters, digits, - and _ in dot-separated labels");
  }
  return host;
}

/** Normalises a configured suffix (`example.com`, `.Example.com.`) the way hosts are. */
export function normalizeSuffix(suffix: string): string {
  const trimmed = suffix.startsWith(".") ? suffix.slice(1) : suffix;
  try {
    return normalizeHost(trimmed);
  } catch {
    throw new Error(`hostSuffix ${quoteInput(suffix)} is not a valid DNS name (e.g. example.com)`);
  }
}

/**
 * The single label in front of one of the suffixes, or an error: `acme.example.com` gives
 * `acme`; `a.acme.example.com`, `example.com` and `acme.example.com.evil.test` give none.
 */
export function tenantLabel(host: string, suffixes: readonly string[]): string {
  const normalized = normalizeHost(host);
  for (const suffix of suffixes) {
    if (!normalized.endsWith(`.${suffix}`)) continue;
    const label = normalized.slice(0, -(suffix.length + 1));
    if (label.includes(".")) {
      throw new TenantResolutionError(
        "invalid-input",
        `host ${quoteInput(host)} is not a tenant host: only one label may precede ${suffix}`,
      );
    }
    return label;
  }
  throw new TenantResolutionError(
    "invalid-input",
    `host ${quoteInput(host)} is not a tenant host: it must be <tenant>.${suffixes.join(" or <tenant>.")}`,
  );
}

function invalid(input: unknown, what: string): TenantResolutionError {
  return new TenantResolutionError("invalid-input", `host ${quoteInput(input)} ${what}`);
}
