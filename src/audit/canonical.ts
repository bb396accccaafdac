import type { Link } from './chain.js';
import { safeJson } from './json-text.js';
import type { DecisionRecord, Outcome } from './record.js';

/**
 * The one serialisation of records and outcomes. The body text is what the hash chain covers and
 * what the store keeps verbatim, so its key order is fixed here and must only ever grow at the end
 * (docs/decision-log.md: schema version 1). Line separators, C1 and bidi controls in values are
 * escaped (safeJson): a SIEM's line splitter sees one line per entry. Bodies written before that
 * carry them raw and verify all the same, since the hash covers the text as written.
 */
export function recordBody(r: DecisionRecord, redactParameters: boolean): string {
  return safeJson({
    v: 1,
    id: r.id,
    time: r.time,
    kind: r.kind,
    instanceId: r.instanceId,
    sessionId: r.sessionId,
    seq: r.seq,
    human: r.human,
    agent: r.agent,
    tenant: r.tenant,
    roles: r.roles,
    tokenId: r.tokenId,
    clientAddress: r.clientAddress,
    applicationName: r.applicationName,
    protocol: r.protocol,
    sql: r.sql,
    rewrittenSql: r.rewrittenSql,
    fingerprint: r.fingerprint,
    verdict: r.verdict,
    reasons: r.reasons,
    ruleIds: r.ruleIds,
    tables: r.tables,
    columns: r.columns,
    flags: r.flags,
    error: r.error,
    detail: r.detail,
    // Redaction is enforced here as well as by the proxy: a record never carries values by accident.
    parameters: redactParameters ? null : (r.parameters ?? null),
    judgeMicros: r.judgeMicros,
  });
}

export function outcomeBody(o: Outcome): string {
  return safeJson({
    v: 1,
    recordId: o.recordId,
    sessionId: o.sessionId,
    time: o.time,
    command: o.command,
    rows: o.rows,
    upstreamMicros: o.upstreamMicros,
    sqlstate: o.sqlstate,
    errorMessage: o.errorMessage,
  });
}

export type EntryType = 'decision' | 'outcome';

/** Denials and auth failures are logged at pino's warn level, so a SIEM can alert on the level. */
export function isWarning(r: DecisionRecord): boolean {
  return r.verdict === 'deny' || r.kind === 'auth_failure';
}

/** pino's numeric levels, so pino tooling (pino-pretty, transports) reads the NDJSON as is. */
const INFO = 30;
const WARN = 40;

/**
 * One NDJSON line, the same in the spool and in the SIEM output:
 * {"level","time","msg","instance","chainSeq","prev","hash","mac","record"|"outcome"}.
 * The body comes last and verbatim, so a reader can cut it out without re-serialising.
 */
export function entryLine(
  type: EntryType,
  instance: string,
  time: string,
  warn: boolean,
  link: Link,
  body: string,
): string {
  return (
    `{"level":${warn ? WARN : INFO},"time":${JSON.stringify(time)},"msg":"${type}","instance":${JSON.stringify(instance)},` +
    `"chainSeq":${link.seq},"prev":"${link.prev}","hash":"${link.hash}","mac":${link.mac === null ? 'null' : `"${link.mac}"`},` +
    `"${type === 'decision' ? 'record' : 'outcome'}":${body}}\n`
  );
}

export interface SpoolEntry {
  readonly type: EntryType;
  readonly instance: string;
  readonly seq: number;
  readonly prev: string;
  readonly hash: string;
  readonly mac: string | null;
  /** The exact body text the hash covers. */
  readonly body: string;
  readonly value: Record<string, unknown>;
}

/** A spool segment's first line: where the chain stood when the segment was opened. */
export interface HeadLine {
  readonly msg: 'head';
  readonly instance: string;
  readonly chainSeq: number;
  readonly hash: string;
}

export function headLine(instance: string, head: { seq: number; hash: string }): string {
  return `{"msg":"head","instance":${JSON.stringify(instance)},"chainSeq":${head.seq},"hash":"${head.hash}"}\n`;
}

/** Parses one spool line (an entry or a segment's head line). Throws on a line that is not ours. */
export function parseEntryLine(line: string): SpoolEntry | HeadLine {
  const v = JSON.parse(line) as Record<string, unknown>;
  if (v.msg === 'head') return v as unknown as HeadLine;
  const type = v.msg;
  if (type !== 'decision' && type !== 'outcome') throw new Error(`unknown spool line type ${String(type)}`);
  const key = type === 'decision' ? '"record":' : '"outcome":';
  // The header holds no free text, so the first occurrence of the key is the body's.
  const at = line.indexOf(key);
  const stop = line.endsWith('\n') ? line.length - 2 : line.length - 1;
  return {
    type,
    instance: v.instance as string,
    seq: v.chainSeq as number,
    prev: v.prev as string,
    hash: v.hash as string,
    mac: (v.mac as string | null) ?? null,
    body: line.slice(at + key.length, stop),
    value: v[type === 'decision' ? 'record' : 'outcome'] as Record<string, unknown>,
  };
}
