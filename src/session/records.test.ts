import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { emptyFacts } from '../../test/support/read-only-judge.js';
import type { DecisionSink } from '../audit/record.js';
import type { Verdict } from '../policy/verdict.js';
import { logAuditUnavailable, recordedParameters, SessionRecords } from './records.js';

describe('logAuditUnavailable', () => {
  it('writes one line per reason per minute, however many statements a full spool refuses', () => {
    const lines: { event?: string; err?: string }[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    for (let i = 0; i < 1000; i++) logAuditUnavailable(log, 'the decision spool is full (test 1)');
    // The benign look-alike: another reason still gets its own line.
    logAuditUnavailable(log, 'the decision spool cannot be written (test 1)');
    expect(lines.map((l) => l.err)).toEqual([
      'the decision spool is full (test 1)',
      'the decision spool cannot be written (test 1)',
    ]);
  });
});

describe('SessionRecords', () => {
  const verdict = (sql: string): Verdict => ({ ...emptyFacts, kind: 'rewrite', sql });
  const records = (): SessionRecords =>
    new SessionRecords(
      's',
      'i',
      '127.0.0.1:1',
      { identity: undefined, params: undefined },
      { decide: () => {}, complete: () => {} } as unknown as DecisionSink,
      pino({ level: 'silent' }),
    );

  it('keeps the head and the length of a rewrite many times the agent text (red team, round 13)', () => {
    const huge = `SELECT ${'x'.repeat(300_000)}`;
    const r = records().statement({ mode: 'simple' }, 'SELECT x', null, verdict(huge));
    expect(r.rewrittenSql!.length).toBeLessThan(70_000);
    expect(r.rewrittenSql).toMatch(new RegExp(`^SELECT x+\\.\\.\\. \\(${huge.length} characters\\)$`));
    // The look-alike: an ordinary rewrite is kept whole.
    const plain = "SELECT id FROM orders WHERE org_id = 'acme'";
    expect(
      records().statement({ mode: 'simple' }, 'SELECT id FROM orders', null, verdict(plain)).rewrittenSql,
    ).toBe(plain);
  });

  it('records bind values as text, binary ones as hex, each cut to 4,096 characters', () => {
    expect(recordedParameters([Buffer.from('42'), null, Buffer.from([1, 255])], [0, 0, 1])).toEqual([
      '42',
      null,
      '\\x01ff',
    ]);
    const [long] = recordedParameters([Buffer.from('y'.repeat(10_000))], [0]);
    expect(long).toMatch(/^y{4096}\.\.\. \(10000 characters\)$/);
  });

  it('keeps at most 64 K characters of values in one record, and at most 1,000 values', () => {
    const big = recordedParameters(
      Array.from({ length: 20 }, () => Buffer.from('z'.repeat(8192))),
      [],
    );
    expect(big.slice(0, 16).every((v) => v?.startsWith('z'.repeat(4096)))).toBe(true);
    expect(big.slice(16)).toEqual(Array.from({ length: 4 }, () => '... (8192 characters)'));
    const many = recordedParameters(
      Array.from({ length: 65_535 }, (_, i) => Buffer.from(String(i))),
      [],
    );
    expect(many).toHaveLength(1001);
    expect(many.slice(0, 3)).toEqual(['0', '1', '2']);
    expect(many.at(-1)).toBe('... (65535 values)');
  });
});
