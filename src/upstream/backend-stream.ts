import { Backend } from '../protocol/codes.js';

/**
 * What the relay does with one backend message: forward it, drop it, or send other bytes instead.
 */
export type Disposition = 'forward' | 'drop' | Buffer;

/**
 * Splits the server's byte stream into messages without copying them, and hands each whole
 * message to `inspect`, except DataRow and CopyData: those are streamed on as bytes arrive, so a
 * huge row or a long COPY never sits whole in pgwarden's memory. Output is gathered per chunk so a
 * chunk of many small messages becomes one write.
 */
export class BackendStream {
  private pending: Buffer | undefined;
  /** Bytes of a streamed message still to come. */
  private streamRemaining = 0;

  /**
   * `inspect` gets the message's code and where its body lies in `buf` (from bodyStart to end);
   * it makes a view of the body only if it needs to read it.
   */
  constructor(
    private readonly inspect: (code: number, buf: Buffer, bodyStart: number, end: number) => Disposition,
  ) {}

  /** Returns the buffers to write to the client for this chunk. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let buf = chunk;
    if (this.streamRemaining > 0) {
      const n = Math.min(this.streamRemaining, buf.length);
      out.push(buf.subarray(0, n));
      this.streamRemaining -= n;
      buf = buf.subarray(n);
    }
    if (this.pending) {
      buf = Buffer.concat([this.pending, buf]);
      this.pending = undefined;
    }
    let pos = 0;
    // Start of a run of messages forwarded as is, so they go out as one slice.
    let runStart = 0;
    while (buf.length - pos >= 5) {
      const code = buf[pos]!;
      const total = 1 + buf.readInt32BE(pos + 1);
      if (buf.length - pos < total) {
        if (code === Backend.DataRow || code === Backend.CopyData) {
          // Stream the start of a large row now; the rest passes as it arrives.
          this.streamRemaining = total - (buf.length - pos);
          pos = buf.length;
        }
        break;
      }
      if (code === Backend.DataRow || code === Backend.CopyData) {
        pos += total;
        continue;
      }
      const verdict = this.inspect(code, buf, pos + 5, pos + total);
      if (verdict !== 'forward') {
        if (pos > runStart) out.push(buf.subarray(runStart, pos));
        if (verdict !== 'drop') out.push(verdict);
        runStart = pos + total;
      }
      pos += total;
    }
    if (pos > runStart) out.push(buf.subarray(runStart, pos));
    if (pos < buf.length) this.pending = Buffer.from(buf.subarray(pos));
    return out;
  }
}
