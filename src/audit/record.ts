import type { PgwardenError } from '../errors/registry.js';

/**
 * The decision record: one per judged statement, session start and end, and auth failure.
 * Its NDJSON form is a stable schema for SIEMs (docs/decision-log.md); add fields, never rename.
 */
export type RecordKind = 'statement' | 'session_start' | 'session_end' | 'auth_failure';

export interface DecisionRecord {
  readonly id: string;
  readonly time: string;
  readonly kind: RecordKind;
  readonly instanceId: string;
  readonly sessionId: string;
  /** Position of this record in its session, from 0. */
  readonly seq: number;
  readonly human: string | null;
  readonly agent: string | null;
  readonly tenant: string | null;
  readonly roles: readonly string[];
  readonly tokenId: string | null;
  readonly clientAddress: string;
  readonly applicationName: string | null;
  readonly protocol: {
    readonly mode: 'simple' | 'extended' | 'function-call' | 'startup';
    readonly statementName?: string;
    readonly portalName?: string;
  } | null;
  readonly sql: string | null;
  readonly rewrittenSql: string | null;
  readonly fingerprint: string | null;
  readonly verdict: 'allow' | 'rewrite' | 'deny' | null;
  readonly reasons: readonly string[];
  readonly ruleIds: readonly string[];
  readonly tables: readonly string[];
  readonly columns: readonly string[];
  readonly flags: readonly string[];
  /** For denials and auth failures: the pgwarden error code, SQLSTATE and the client message. */
  readonly error: { readonly code: string; readonly sqlstate: string; readonly message: string } | null;
  /** Why, for operators (e.g. the token failure reason); never shown to the client. */
  readonly detail: string | null;
  /** Bind parameters, only when audit.redactParameters is false. */
  readonly parameters: readonly (string | null)[] | null;
  readonly judgeMicros: number | null;
}

/** What happened after forwarding, known when the upstream finished the statement. */
export interface Outcome {
  readonly recordId: string;
  readonly sessionId: string;
  readonly time: string;
  /** The CommandComplete tag, e.g. "SELECT 3". */
  readonly command: string | null;
  readonly rows: number | null;
  readonly upstreamMicros: number;
  readonly sqlstate: string | null;
  readonly errorMessage: string | null;
}

/**
 * Where decisions go. `decide` runs before the statement is forwarded and must throw (a
 * PgwardenError PGW_AUDIT_UNAVAILABLE) if it cannot accept the record: then nothing is forwarded.
 * A sink whose `decide` only queues the record (the durable log writes a turn's records together)
 * has `whenDurable`: the session forwards nothing it decided until `done` is called, and ends the
 * session instead if `done` gets an error.
 */
export interface DecisionSink {
  /**
   * True when the sink keeps nothing of allowed statements (durable log and NDJSON both off):
   * sessions then do not build their records, which costs about a microsecond per statement.
   */
  readonly off?: boolean;
  decide(record: DecisionRecord): void;
  whenDurable?(done: (err: PgwardenError | undefined) => void): void;
  /** `tenant`: whose statement it was (the durable log charges the outcome to its share). */
  complete(outcome: Outcome, tenant?: string | null): void;
  close(): Promise<void>;
}
