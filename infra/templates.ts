/**
 * Template versions and the migration history, as the program, the audit and the tools name
 * them. A stack's `template` is `<family>_v<N>`: version N of the template, built from
 * migrations 0001..N (tools/lib/migrations). Pure: no I/O.
 */

/**
 * The schema each tenant database keeps its migration history in (and, in each cluster's
 * maintenance database, the ledger): the provisioning role's, with no grant to anyone.
 */
export const HISTORY_SCHEMA = "pgtenants_history";

export interface TemplateVersion {
  family: string;
  version: number;
}

const VERSIONED = /^(.+)_v([1-9][0-9]{0,5})$/;

/** `customer_template_v2` is version 2 of `customer_template`; a name without `_v<N>` is none. */
export function parseTemplate(name: string): TemplateVersion | undefined {
  const m = VERSIONED.exec(name);
  return m === null ? undefined : { family: m[1], version: Number(m[2]) };
}

/** The template database of a version: `customer_template_v3`. */
export function templateName(family: string, version: number): string {
  return `${family}_v${version}`;
}
