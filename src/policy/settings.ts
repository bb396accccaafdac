/**
 * Settings an agent may SET / RESET: they change how values are shown or how long to wait, never
 * who the session is, which objects names resolve to, or how SQL text is read. The proxy pins
 * search_path, standard_conforming_strings, client_encoding, statement_timeout and
 * application_name: the second and third are here for the value pgwarden pins only (drivers set
 * them at connect: Rails, SET NAMES), the others never. idle_in_transaction_session_timeout is not
 * either: an agent must not switch off a timeout the DBA set (it can still SHOW it).
 * https://www.postgresql.org/docs/current/runtime-config-client.html
 */
export const settableParameters = new Set([
  'datestyle',
  'intervalstyle',
  'timezone',
  'extra_float_digits',
  'bytea_output',
  'client_min_messages',
  'lock_timeout',
  'default_transaction_isolation',
  'default_transaction_read_only',
  'default_transaction_deferrable',
  'transaction_isolation',
  'transaction_read_only',
  'transaction_deferrable',
  'xmloption',
  'xmlbinary',
  'standard_conforming_strings',
  'client_encoding',
]);

/**
 * Values allowed for settings whose other values tell more than the agent's own results. Below
 * notice, client_min_messages sends the server's DEBUG and LOG messages: at DEBUG5 every commit
 * reports its transaction id, which counts every tenant's writes (the leak xmin and txid_* are
 * refused for; red team, round 11), and LOG can carry the SQL pgwarden forwarded.
 */
export const settableValues: Readonly<Record<string, ReadonlySet<string>>> = {
  client_min_messages: new Set(['notice', 'warning', 'error']),
  // The values pgwarden pins (session.ts): any other would change how SQL text is read.
  standard_conforming_strings: new Set(['on']),
  client_encoding: new Set(['utf8', 'utf-8', 'utf_8', 'unicode']),
};

/** Settings an agent may SHOW: the settable ones plus read-only facts clients ask for at start. */
export const showableParameters = new Set([
  ...settableParameters,
  'server_version',
  'server_version_num',
  'server_encoding',
  'client_encoding',
  'standard_conforming_strings',
  'search_path',
  'integer_datetimes',
  'max_identifier_length',
  'statement_timeout',
  'idle_in_transaction_session_timeout',
  'application_name',
  'lc_collate',
  'lc_ctype',
  'lc_messages',
  'lc_monetary',
  'lc_numeric',
  'lc_time',
  'transaction isolation level',
]);

/** EXPLAIN options that only change what is printed (ANALYZE runs the already-scoped query). */
export const explainOptions = new Set([
  'analyze',
  'verbose',
  'costs',
  'settings',
  'generic_plan',
  'buffers',
  'serialize',
  'wal',
  'timing',
  'summary',
  'memory',
  'format',
]);

/** COPY options allowed with TO STDOUT. */
export const copyOptions = new Set([
  'format',
  'delimiter',
  'null',
  'default',
  'header',
  'quote',
  'escape',
  'force_quote',
  'encoding',
]);

const timeUnitsMs: Readonly<Record<string, number>> = {
  us: 0.001,
  ms: 1,
  s: 1000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * A statement_timeout value as the server reads it (an integer of milliseconds, or with one of
 * its time units), in milliseconds; undefined when pgwarden cannot be sure of its reading.
 * https://www.postgresql.org/docs/current/config-setting.html#CONFIG-SETTING-NAMES-VALUES
 */
export function timeoutMs(value: string): number | undefined {
  const m = /^\s*(\d{1,12})\s*(us|ms|s|min|h|d)?\s*$/.exec(value);
  if (!m) return undefined;
  return Number(m[1]) * (timeUnitsMs[m[2] ?? 'ms'] ?? 1);
}

/**
 * Whether an agent may set statement_timeout to `ms`: a timeout at most as long as the one
 * pgwarden pins (`pinnedMs`, 0: none), never none at all. Drivers set their own at connect
 * (node-postgres's statement_timeout option) or shorten it for one transaction.
 */
export function stricterTimeout(ms: number | undefined, pinnedMs: number): boolean {
  return ms !== undefined && ms >= 1 && (pinnedMs === 0 || ms <= pinnedMs);
}
