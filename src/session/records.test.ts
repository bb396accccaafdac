import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { logAuditUnavailable } from './records.js';

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
