import { describe, expect, it, vi } from 'vitest';
import { BackendStream, MAX_WHOLE_NOTICE_BYTES } from './backend-stream.js';
import { readErrorFields } from '../protocol/backend-messages.js';

function msg(code: string, body: string): Buffer {
  const b = Buffer.from(body);
  const out = Buffer.alloc(5 + b.length);
  out[0] = code.charCodeAt(0);
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

const stream = Buffer.concat([
  msg('T', 'rowdesc'),
  msg('D', 'row-1'),
  msg('D', 'a much longer row that will be split'),
  msg('C', 'SELECT 2\0'),
  msg('E', 'error'),
  msg('Z', 'I'),
]);

describe('BackendStream', () => {
  it('forwards every byte unchanged and inspects every non-row message, for any split', () => {
    for (let i = 0; i <= stream.length; i++) {
      const seen: string[] = [];
      const s = new BackendStream((code) => (seen.push(String.fromCharCode(code)), 'forward'));
      const out = [...s.push(stream.subarray(0, i)), ...s.push(stream.subarray(i))];
      expect(Buffer.concat(out)).toEqual(stream);
      expect(seen).toEqual(['T', 'C', 'E', 'Z']);
    }
  });

  it('replaces or drops a message in place', () => {
    const s = new BackendStream((code) =>
      code === 0x45 ? Buffer.from('X') : code === 0x54 ? 'drop' : 'forward',
    );
    const out = Buffer.concat(s.push(stream)).toString('latin1');
    expect(out).not.toContain('rowdesc');
    expect(out).toContain('SELECT 2\0X');
  });

  it('streams a large row before it has fully arrived', () => {
    const big = msg('D', 'x'.repeat(1000));
    const s = new BackendStream(() => 'forward');
    const first = Buffer.concat(s.push(big.subarray(0, 100)));
    expect(first.length).toBe(100);
    expect(Buffer.concat(s.push(big.subarray(100))).length).toBe(big.length - 100);
  });

  it('joins a message split over many chunks once, however many chunks it takes', () => {
    const big = msg('E', `M${'x'.repeat(MAX_WHOLE_NOTICE_BYTES - 64)}\0`);
    const seen: number[] = [];
    const s = new BackendStream((_code, _buf, bodyStart, end) => (seen.push(end - bodyStart), 'forward'));
    const concat = vi.spyOn(Buffer, 'concat');
    try {
      const out: Buffer[] = [];
      for (let i = 0; i < big.length; i += 65536) out.push(...s.push(big.subarray(i, i + 65536)));
      expect(seen).toEqual([big.length - 5]);
      expect(concat).toHaveBeenCalledTimes(1);
      concat.mockRestore();
      expect(Buffer.concat(out).equals(big)).toBe(true);
    } finally {
      concat.mockRestore();
    }
  });

  it('clips an error or notice past MAX_WHOLE_NOTICE_BYTES from its head, skips the rest, and goes on (red team, round 45)', () => {
    const huge = 6 * 1024 * 1024;
    const error = msg('E', `SERROR\0VERROR\0C22P02\0M${'€'.repeat(huge / 3)}\0Dmore\0\0`);
    const notice = msg('N', `SNOTICE\0VNOTICE\0C00000\0M${'n'.repeat(huge)}\0\0`);
    const after = msg('Z', 'I');
    const wire = Buffer.concat([msg('C', 'SELECT 1\0'), error, notice, after]);
    for (const step of [1 << 20, 65536, 7777, wire.length]) {
      const seen: Buffer[] = [];
      const s = new BackendStream(
        (_code, buf, bodyStart, end) => (seen.push(buf.subarray(bodyStart, end)), 'forward'),
      );
      const out: Buffer[] = [];
      for (let i = 0; i < wire.length; i += step) out.push(...s.push(wire.subarray(i, i + step)));
      const sent = Buffer.concat(out);
      expect(seen).toHaveLength(4);
      const e = readErrorFields(seen[1]!);
      expect(e).toMatchObject({ severity: 'ERROR', sqlstate: '22P02' });
      expect(e.message).toMatch(
        new RegExp(
          `^€{1000}[^]*\\(pgwarden: the server's error was ${error.length - 5} bytes long; clipped\\)$`,
        ),
      );
      expect(readErrorFields(seen[2]!).message).toMatch(
        /^n+\.\.\. \(pgwarden: the server's notice was \d+ bytes long; clipped\)$/,
      );
      // What the client gets: the message before, both clipped ones, and everything after, in order.
      expect(sent.length).toBeLessThan(64 * 1024);
      expect(sent.subarray(0, 14)).toEqual(msg('C', 'SELECT 1\0'));
      expect(sent.subarray(sent.length - 6)).toEqual(after);
      expect(sent.includes(Buffer.from('Dmore'))).toBe(false);
    }
  });
});
