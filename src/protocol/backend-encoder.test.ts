import { describe, expect, it } from 'vitest';
import { readErrorFields } from './backend-messages.js';
import { Backend } from './codes.js';
import { errorResponse, withoutDetail } from './backend-encoder.js';

/** An ErrorResponse body as the server writes it: type byte, text, NUL; a final NUL. */
function body(fields: [string, string][]): Buffer {
  return Buffer.concat([...fields.map(([t, v]) => Buffer.from(`${t}${v}\0`)), Buffer.from([0])]);
}

describe('withoutDetail', () => {
  const server: [string, string][] = [
    ['S', 'ERROR'],
    ['V', 'ERROR'],
    ['C', '23502'],
    ['M', 'null value in column "name" of relation "customers" violates not-null constraint'],
    ['D', 'Failing row contains (1, acme, null, user1@acme.test, 000007919).'],
    ['s', 'public'],
    ['t', 'customers'],
    ['c', 'name'],
  ];

  it('drops DETAIL and keeps every other field in order', () => {
    const out = withoutDetail(Backend.ErrorResponse, body(server));
    expect(out).toBeDefined();
    expect(out!.toString('latin1', 0, 1)).toBe('E');
    expect(out!.readInt32BE(1)).toBe(out!.length - 1);
    expect(out!.subarray(5)).toEqual(body(server.filter(([t]) => t !== 'D')));
    expect(out!.toString()).not.toContain('000007919');
    expect(readErrorFields(out!.subarray(5))).toMatchObject({ sqlstate: '23502', severity: 'ERROR' });
    expect(withoutDetail(Backend.NoticeResponse, body(server))!.toString('latin1', 0, 1)).toBe('N');
  });

  it('leaves an error without DETAIL alone, and drops a malformed tail rather than pass it on', () => {
    expect(withoutDetail(Backend.ErrorResponse, body(server.filter(([t]) => t !== 'D')))).toBeUndefined();
    const cut = withoutDetail(Backend.ErrorResponse, Buffer.from('C23502\0Drow 000007919'));
    expect(cut?.subarray(5)).toEqual(Buffer.from('C23502\0\0'));
    const own = errorResponse({ severity: 'ERROR', sqlstate: '42501', message: 'x' });
    expect(withoutDetail(Backend.ErrorResponse, own.subarray(5))).toBeUndefined();
  });
});
