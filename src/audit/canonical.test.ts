import { describe, expect, it } from 'vitest';
import { entryLine, headLine, parseEntryLine, recordBody } from './canonical.js';
import { Chain, GENESIS, linkHash } from './chain.js';
import { sampleRecord } from './sample-records.js';

describe('spool lines', () => {
  it('cut the exact hashed body back out of a line, whatever the SQL holds', () => {
    const r = sampleRecord({
      instanceId: 'i',
      sessionId: 's',
      seq: 0,
      sql: `SELECT '"record":{}' AS x, E'\\n' , 'é ✓ 🙂' -- }`,
    });
    const body = recordBody(r, true);
    const chain = new Chain({ seq: 0, hash: GENESIS }, undefined);
    const link = chain.peek(body);
    const e = parseEntryLine(entryLine('decision', 'i', r.time, false, link, body));
    expect('body' in e && e.body).toBe(body);
    expect('body' in e && linkHash(e.prev, e.body)).toBe(link.hash);
    expect('value' in e && e.value.sql).toBe(r.sql);
  });

  it('parse head lines', () => {
    expect(parseEntryLine(headLine('i', { seq: 7, hash: 'ab' }))).toMatchObject({ msg: 'head', chainSeq: 7 });
  });

  it('reject lines that are not ours', () => {
    expect(() => parseEntryLine('{"msg":"other"}')).toThrow();
  });
});

describe('chain', () => {
  it('links each entry to the one before and keys it when an HMAC key is set', () => {
    const c = new Chain({ seq: 0, hash: GENESIS }, 'k'.repeat(32));
    const a = c.peek('a');
    c.commit(a);
    const b = c.peek('b');
    expect(b).toMatchObject({ seq: 2, prev: a.hash });
    expect(b.mac).toMatch(/^[0-9a-f]{64}$/);
    // peek without commit does not move the head
    expect(c.peek('b').hash).toBe(b.hash);
  });
});
