/**
 * The one registry of pgwarden errors. Each entry has a stable code (used in logs, decision
 * records and docs/errors.md), the SQLSTATE and severity the client sees, and the message an
 * agent can act on. Details for operators go to the log and the decision record, not the client.
 *
 * SQLSTATEs: https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export type Severity = 'ERROR' | 'FATAL';

export interface ErrorSpec {
  readonly sqlstate: string;
  readonly severity: Severity;
  readonly message: string;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
}

export const errors = {
  PGW_POLICY_DENIED: {
    sqlstate: '42501',
    severity: 'ERROR',
    message: 'pgwarden denied this statement',
    logLevel: 'info',
  },
  PGW_PARENT_KEY_REFUSED: {
    sqlstate: '42501',
    severity: 'ERROR',
    message: 'a row would reference a parent row outside your tenant; it was not written',
    logLevel: 'info',
  },
  PGW_FEATURE_REFUSED: {
    sqlstate: '0A000',
    severity: 'ERROR',
    message: 'pgwarden does not allow this protocol feature',
    logLevel: 'info',
  },
  PGW_RULES_CHANGED: {
    // PostgreSQL's own "cached plan must not change result type" has this SQLSTATE too.
    sqlstate: '0A000',
    severity: 'ERROR',
    message: 'the rules changed since this statement was prepared; prepare it again',
    logLevel: 'info',
  },
  PGW_UNKNOWN_STATEMENT: {
    // The server's own SQLSTATE for a prepared statement it does not have: drivers that prepare
    // again on it (after a pool reset, say) do so here too.
    sqlstate: '26000',
    severity: 'ERROR',
    message: 'this session has no such prepared statement',
    logLevel: 'info',
  },
  PGW_UNKNOWN_CURSOR: {
    // The server's own SQLSTATE for a cursor or portal it does not have.
    sqlstate: '34000',
    severity: 'ERROR',
    message: 'this session has no such cursor or portal',
    logLevel: 'info',
  },
  PGW_SYNTAX_ERROR: {
    sqlstate: '42601',
    severity: 'ERROR',
    message: 'pgwarden could not parse this statement',
    logLevel: 'info',
  },
  PGW_AUTH_FAILED: {
    sqlstate: '28P01',
    severity: 'FATAL',
    message: 'password authentication failed',
    logLevel: 'warn',
  },
  PGW_TOKEN_EXPIRED: {
    sqlstate: '28000',
    severity: 'FATAL',
    message: 'the token of this session has expired; reconnect with a fresh token',
    logLevel: 'info',
  },
  PGW_STARTUP_REFUSED: {
    sqlstate: '28000',
    severity: 'FATAL',
    message: 'pgwarden refused the startup parameters',
    logLevel: 'warn',
  },
  PGW_TLS_REQUIRED: {
    sqlstate: '08004',
    severity: 'FATAL',
    message: 'pgwarden requires TLS on this connection (sslmode=require)',
    logLevel: 'warn',
  },
  PGW_PROTOCOL_VIOLATION: {
    sqlstate: '08P01',
    severity: 'FATAL',
    message: 'malformed or unexpected protocol message',
    logLevel: 'warn',
  },
  PGW_MESSAGE_TOO_LARGE: {
    sqlstate: '54000',
    severity: 'FATAL',
    message: 'message exceeds the maximum size pgwarden accepts',
    logLevel: 'warn',
  },
  PGW_SESSION_LIMIT: {
    sqlstate: '53400',
    severity: 'ERROR',
    message: 'the session holds as many prepared statements, portals and cursors as pgwarden allows',
    logLevel: 'warn',
  },
  PGW_TOO_MANY_CONNECTIONS: {
    sqlstate: '53300',
    severity: 'FATAL',
    message: 'too many connections to pgwarden',
    logLevel: 'warn',
  },
  PGW_TIMEOUT: { sqlstate: '08P01', severity: 'FATAL', message: 'connection timed out', logLevel: 'info' },
  // Debug: a client that connects and leaves without a word is no event, and tokenless clients
  // doing so in a loop wrote 5,000 error lines a second.
  PGW_CLIENT_GONE: {
    sqlstate: '08006',
    severity: 'FATAL',
    message: 'the client closed the connection during startup',
    logLevel: 'debug',
  },
  PGW_UPSTREAM_UNAVAILABLE: {
    sqlstate: '08006',
    severity: 'FATAL',
    message: 'pgwarden cannot reach the database',
    logLevel: 'error',
  },
  PGW_SESSION_DRIFT: {
    sqlstate: '42501',
    severity: 'FATAL',
    message: 'a pinned session setting changed; pgwarden ended the session',
    logLevel: 'warn',
  },
  PGW_RULES_NOT_LOADED: {
    sqlstate: '57P03',
    severity: 'FATAL',
    message: 'pgwarden is starting and has no rules loaded yet',
    logLevel: 'warn',
  },
  PGW_SHUTTING_DOWN: {
    sqlstate: '57P01',
    severity: 'FATAL',
    message: 'pgwarden is shutting down',
    logLevel: 'info',
  },
  PGW_AUDIT_UNAVAILABLE: {
    sqlstate: '53000',
    severity: 'ERROR',
    message: 'pgwarden cannot record this statement, so it was not run',
    logLevel: 'error',
  },
  PGW_TOO_COMPLEX: {
    sqlstate: '54001',
    severity: 'ERROR',
    message: 'statement too complex for pgwarden to judge in time',
    logLevel: 'warn',
  },
  PGW_INTERNAL: {
    sqlstate: 'XX000',
    severity: 'ERROR',
    message: 'internal pgwarden error; the statement was denied',
    logLevel: 'error',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof errors;

/** An error pgwarden reports to a client; `detail` and `hint` are shown to the client too. */
export class PgwardenError extends Error {
  readonly code: ErrorCode;
  readonly spec: ErrorSpec;
  readonly detail: string | undefined;
  readonly hint: string | undefined;

  constructor(
    code: ErrorCode,
    opts: { message?: string; detail?: string; hint?: string; cause?: unknown } = {},
  ) {
    const spec = errors[code];
    super(opts.message ?? spec.message, { cause: opts.cause });
    this.name = 'PgwardenError';
    this.code = code;
    this.spec = spec;
    this.detail = opts.detail;
    this.hint = opts.hint;
  }

  get sqlstate(): string {
    return this.spec.sqlstate;
  }
}
