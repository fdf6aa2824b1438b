import * as pulumi from "@pulumi/pulumi";
import { PROJECT, parseStackConfig, SECRET_KEYS, StackConfig, stackFile } from "./config";
import { InputError } from "./issues";

/**
 * The stack config as the running program reads it from the Pulumi runtime: the one part of the
 * configuration that needs the runtime (infra/config.ts, the schema and its parser, is pure and
 * shared with the check, the tools and the pack).
 */

/** The stack config as the running Pulumi program sees it. */
export function loadStackConfig(): StackConfig {
  // Structured values arrive as JSON text and plain strings as themselves; the schema, not the
  // Config accessors, decides what is valid, so that every problem is reported at once.
  const raw: Record<string, unknown> = {};
  for (const [fullKey, text] of Object.entries(pulumi.runtime.allConfig())) {
    const [namespace, key] = fullKey.split(":", 2);
    if (namespace !== PROJECT || SECRET_KEYS.includes(key)) continue;
    raw[key] = parseConfigValue(text);
  }
  return parseStackConfig(pulumi.getStack(), raw);
}

function parseConfigValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * The provisioning password of each tier, as secrets. Read from the secret config object
 * `pg-tenants:clusterPasswords` (`{tier: password}`); a tier without one is an error naming it.
 * The raw value is read once and immediately wrapped: it never reaches a log or a plain output.
 */
export function loadClusterPasswords(cfg: StackConfig): Record<string, pulumi.Output<string>> {
  const file = stackFile(cfg.stack);
  const rawText = pulumi.runtime.getConfig(`${PROJECT}:clusterPasswords`);
  let parsed: unknown = {};
  try {
    parsed = rawText === undefined ? {} : JSON.parse(rawText);
  } catch {
    parsed = undefined;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new InputError(`Stack config ${file} is invalid:`, [
      { file, field: `${PROJECT}:clusterPasswords`, message: "must be an object {tier: password}" },
    ]);
  }
  const passwords = parsed as Record<string, unknown>;
  const missing = Object.keys(cfg.clusters).filter((t) => typeof passwords[t] !== "string");
  if (missing.length > 0) {
    throw new InputError(
      `Stack config ${file} is invalid:`,
      missing.map((tier) => ({
        file,
        field: `${PROJECT}:clusterPasswords.${tier}`,
        message: `missing; set it with: pulumi config set --secret --path 'clusterPasswords.${tier}' <password>`,
      })),
    );
  }
  return Object.fromEntries(
    Object.keys(cfg.clusters).map((tier) => [tier, pulumi.secret(passwords[tier] as string)]),
  );
}
