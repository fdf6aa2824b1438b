import type * as pg from "pg";

/** The only SQL the encryption helpers send; the key is always `$2`, a bind parameter. */
export const ENCRYPT_SQL = "SELECT pgp_sym_encrypt($1, $2) AS ciphertext";
export const DECRYPT_SQL = "SELECT pgp_sym_decrypt($1::bytea, $2) AS plaintext";

/**
 * The server settings that decide whether bind parameters (and so a data key) reach the server
 * log. `missing_ok` keeps servers without auto_explain loaded working.
 */
export const LOG_SETTINGS_SQL = `SELECT
  current_setting('log_statement') AS log_statement,
  current_setting('log_min_duration_statement')::int AS log_min_duration_statement,
  current_setting('log_min_duration_sample', true)::int AS log_min_duration_sample,
  current_setting('log_statement_sample_rate', true)::float8 AS log_statement_sample_rate,
  current_setting('log_transaction_sample_rate', true)::float8 AS log_transaction_sample_rate,
  current_setting('log_parameter_max_length', true)::int AS log_parameter_max_length,
  current_setting('log_parameter_max_length_on_error', true)::int AS log_parameter_max_length_on_error,
  current_setting('auto_explain.log_min_duration', true) AS auto_explain_log_min_duration,
  current_setting('auto_explain.log_parameter_max_length', true) AS auto_explain_log_parameter_max_length`;

export interface LogSettings {
  log_statement: string;
  log_min_duration_statement: number;
  log_min_duration_sample: number | null;
  log_statement_sample_rate: number | null;
  log_transaction_sample_rate: number | null;
  log_parameter_max_length: number | null;
  log_parameter_max_length_on_error: number | null;
  auto_explain_log_min_duration: string | null;
  auto_explain_log_parameter_max_length: string | null;
}

/**
 * Why the server would write a statement's bind parameters to its log, or an empty list.
 * Statements with a data key are `SELECT`s, so `log_statement = mod`/`ddl` do not log them.
 * A server without `log_parameter_max_length` (before PostgreSQL 13) logs parameters in full.
 */
export function parameterLoggingReasons(s: LogSettings): string[] {
  const reasons: string[] = [];
  const maxLength = s.log_parameter_max_length ?? -1;
  if (maxLength !== 0) {
    const why: string[] = [];
    if (s.log_statement === "all") why.push("log_statement = all");
    if (s.log_min_duration_statement >= 0) {
      why.push(`log_min_duration_statement = ${s.log_min_duration_statement}`);
    }
    if ((s.log_min_duration_sample ?? -1) >= 0 && (s.log_statement_sample_rate ?? 0) > 0) {
      why.push(`log_min_duration_sample = ${s.log_min_duration_sample}`);
    }
    if ((s.log_transaction_sample_rate ?? 0) > 0) {
      why.push(`log_transaction_sample_rate = ${s.log_transaction_sample_rate}`);
    }
    if (why.length > 0)
      reasons.push(`${why.join(", ")} with log_parameter_max_length = ${maxLength}`);
  }
  if ((s.log_parameter_max_length_on_error ?? 0) !== 0) {
    reasons.push(`log_parameter_max_length_on_error = ${s.log_parameter_max_length_on_error}`);
  }
  const explainMin = s.auto_explain_log_min_duration;
  const explainLength = s.auto_explain_log_parameter_max_length;
  if (
    explainMin !== null &&
    Number(explainMin) >= 0 &&
    explainLength !== null &&
    Number(explainLength) !== 0
  ) {
    reasons.push(
      `auto_explain.log_min_duration = ${explainMin} with auto_explain.log_parameter_max_length = ${explainLength}`,
    );
  }
  return reasons;
}

/** Reads the log settings over the request's own connection. */
export async function readLogSettings(client: pg.ClientBase): Promise<LogSettings> {
  const result = await client.query<LogSettings>(LOG_SETTINGS_SQL);
  return result.rows[0];
}
