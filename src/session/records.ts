/**
 * The decision records of one session: every statement judged, denied or executed, the session's
 * start and end, failed logins, and the outcomes the server reports.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { DecisionRecord, DecisionSink } from '../audit/record.js';
import { clippedText } from '../audit/clip.js';
import { LogThrottle } from '../errors/log-throttle.js';
import { errors } from '../errors/registry.js';
import type { Identity } from '../identity/identity.js';
import type { Judgement, Verdict } from '../policy/verdict.js';
import { isoNow } from './clock.js';
import type { Pending } from './pending.js';
import type { ClientParameters } from './startup.js';

export type Protocol = DecisionRecord['protocol'];

/**
 * The longest statement or portal name and application_name a record keeps whole. Protocol names
 * over 63 bytes are refused anyway (the server would shorten them); a record of a 15 MiB one took
 * 15 MiB of log per message.
 */
const MAX_RECORDED_NAME = 256;

function recordedName(name: string | null): string | null {
  return name === null ? null : clippedText(name, MAX_RECORDED_NAME);
}

/**
 * The longest rewritten SQL a record keeps whole. A rewrite can be 16 times the agent's text (a
 * join of 1,600 scoped references, a guard per row of a multi-row INSERT), and the agent's text is
 * in the record whole; `pgwarden explain` prints any rewrite again (red team, round 13).
 */
const MAX_RECORDED_REWRITE = 65_536;

/** The longest bind value a record keeps whole (audit.redactParameters off). */
const MAX_RECORDED_PARAMETER = 4096;

/**
 * The most values, and characters of values, one record keeps: a Bind within maxMessageBytes can
 * carry 65,535 values, and at 4 KB each a record of them took 256 MB.
 */
const MAX_RECORDED_VALUES = 1000;
const MAX_RECORDED_VALUE_CHARS = 64 * 1024;

/**
 * A Bind's values as a record keeps them: text-format values as text, binary ones as `\\x` and
 * their bytes in hex (as bytea prints), each cut to MAX_RECORDED_PARAMETER characters, and cut
 * shorter once the record holds MAX_RECORDED_VALUE_CHARS. Past MAX_RECORDED_VALUES values, one
 * last element says how many there were.
 */
export function recordedParameters(
  params: readonly (Buffer | null)[],
  formats: readonly number[],
): (string | null)[] {
  let left = MAX_RECORDED_VALUE_CHARS;
  const kept: (string | null)[] = [];
  for (let i = 0; i < params.length && i < MAX_RECORDED_VALUES; i++) {
    const v = params[i];
    if (v === undefined || v === null) {
      kept.push(null);
      continue;
    }
    const text = (formats[i] ?? 0) === 1 ? `\\x${v.toString('hex')}` : v.toString('utf8');
    const max = Math.min(MAX_RECORDED_PARAMETER, left);
    kept.push(clippedText(text, max));
    left -= Math.min(text.length, max);
  }
  if (params.length > MAX_RECORDED_VALUES) kept.push(`... (${params.length} values)`);
  return kept;
}

/** The protocol facts with client-chosen names cut to what a record keeps. */
function recordedProtocol(p: Protocol): Protocol {
  if (!p) return p;
  const { statementName: s, portalName: q } = p;
  if ((s?.length ?? 0) <= MAX_RECORDED_NAME && (q?.length ?? 0) <= MAX_RECORDED_NAME) return p;
  return {
    ...p,
    ...(s === undefined ? {} : { statementName: clippedText(s, MAX_RECORDED_NAME) }),
    ...(q === undefined ? {} : { portalName: clippedText(q, MAX_RECORDED_NAME) }),
  };
}
export type RecordWithHint = DecisionRecord & { hint?: string };

/** Who the session's records name: known once the client has sent its parameters and token. */
export interface Party {
  identity: Identity | undefined;
  params: ClientParameters | undefined;
}

export class SessionRecords {
  private seq = 0;

  constructor(
    private readonly sessionId: string,
    private readonly instanceId: string,
    /** Read once at accept: a closed socket no longer knows its peer. */
    private readonly clientAddress: string,
    private readonly party: Party,
    private readonly sink: DecisionSink,
    private readonly log: Logger,
  ) {}

  base(kind: DecisionRecord['kind'], protocol: Protocol): DecisionRecord {
    return this.make(kind, protocol, null, null, null, null);
  }

  statement(
    protocol: NonNullable<Protocol>,
    sql: string | null,
    judgement: Judgement | null,
    v: Verdict,
    judgeMicros: number | null = judgement?.judgeMicros ?? null,
    /** Bind values, recorded only with audit.redactParameters off (recordedParameters). */
    parameters: readonly (string | null)[] | null = null,
  ): RecordWithHint {
    const r = this.make('statement', protocol, sql, judgement, v, judgeMicros);
    return parameters === null ? r : { ...r, parameters };
  }

  /**
   * Denials, session start and end, and auth failures are recorded too, but a log that cannot take
   * them must not keep a denial from the client or a session from ending.
   */
  bestEffort(record: DecisionRecord): void {
    try {
      this.sink.decide(record);
    } catch (err) {
      logAuditUnavailable(this.log, String(err));
    }
  }

  authFailure(user: string, reason: string): void {
    const spec = errors.PGW_AUTH_FAILED;
    this.bestEffort({
      ...this.base('auth_failure', { mode: 'startup' }),
      agent: user,
      error: { code: 'PGW_AUTH_FAILED', sqlstate: spec.sqlstate, message: spec.message },
      detail: reason,
    });
  }

  /** The server's answer to a request whose decision was recorded. */
  complete(p: Pending, command?: string): void {
    if (!p.recordId) return;
    try {
      this.sink.complete(
        {
          recordId: p.recordId,
          sessionId: this.sessionId,
          time: isoNow(),
          command: p.command ?? command ?? null,
          rows: p.rows,
          upstreamMicros: Math.round((performance.now() - p.startedAt) * 1000),
          sqlstate: p.sqlstate,
          errorMessage: p.errorMessage,
        },
        this.party.identity?.tenant ?? null,
      );
    } catch (err) {
      this.log.error({ event: 'audit_complete_failed', err: String(err) });
    }
  }

  /** One object literal, no spreads: this runs for every execution. */
  private make(
    kind: DecisionRecord['kind'],
    protocol: Protocol,
    sql: string | null,
    judgement: Judgement | null,
    v: Verdict | null,
    judgeMicros: number | null,
  ): RecordWithHint {
    const id = this.party.identity;
    const params = this.party.params;
    const deny = v?.kind === 'deny';
    return {
      id: randomUUID(),
      time: isoNow(),
      kind,
      instanceId: this.instanceId,
      sessionId: this.sessionId,
      seq: this.seq++,
      human: id?.human ?? null,
      agent: id?.agent ?? params?.user ?? null,
      tenant: id?.tenant ?? null,
      roles: id?.roles ?? [],
      tokenId: id?.tokenId ?? null,
      clientAddress: this.clientAddress,
      applicationName: recordedName(params?.applicationName ?? null),
      protocol: recordedProtocol(protocol),
      sql,
      rewrittenSql: v?.kind === 'rewrite' ? clippedText(v.sql, MAX_RECORDED_REWRITE) : null,
      fingerprint: judgement?.fingerprint ?? null,
      verdict: v?.kind ?? null,
      reasons: v?.reasons ?? [],
      ruleIds: v?.ruleIds ?? [],
      tables: v?.tables ?? [],
      columns: v?.columns ?? [],
      flags: v?.flags ?? [],
      error:
        v?.kind === 'deny' ? { code: v.code, sqlstate: errors[v.code].sqlstate, message: v.message } : null,
      detail: null,
      parameters: null,
      judgeMicros,
      ...(deny && v.hint ? { hint: v.hint } : {}),
    };
  }
}

/** One line per minute per reason across all sessions: a full spool refuses every statement. */
const auditUnavailable = new LogThrottle();

/** Logs that the decision log refused a record (and so, unless a denial, its statement). */
export function logAuditUnavailable(log: Logger, reason: string): void {
  const { log: first, summary } = auditUnavailable.note(reason);
  if (summary) log.error({ event: 'audit_unavailable', ...summary }, 'records refused in the last minute');
  if (first) log.error({ event: 'audit_unavailable', err: reason });
}
