import { clippedErrorOrNotice } from '../protocol/backend-encoder.js';
import { Backend } from '../protocol/codes.js';

/**
 * The longest ErrorResponse or NoticeResponse passed on whole. The server quotes input in them, so
 * a statement of a few bytes can draw one of any size; a longer one is read this far, rebuilt with
 * its fields clipped (clippedErrorOrNotice), and the rest of it skipped as it arrives.
 */
export const MAX_WHOLE_NOTICE_BYTES = 1024 * 1024;

const isNotice = (code: number): code is typeof Backend.ErrorResponse | typeof Backend.NoticeResponse =>
  code === Backend.ErrorResponse || code === Backend.NoticeResponse;

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
  /**
   * The start of a message not yet complete, as received: joined once when the rest has arrived
   * (joining on every chunk would copy a 100 MB error message thousands of times).
   */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The length of the pending message, once its header has arrived. */
  private pendingTotal = 0;
  /** Bytes of a streamed message still to come. */
  private streamRemaining = 0;
  /** Bytes of a clipped error or notice still to come, dropped as they arrive. */
  private skipRemaining = 0;

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
    if (this.skipRemaining > 0) {
      const n = Math.min(this.skipRemaining, buf.length);
      this.skipRemaining -= n;
      buf = buf.subarray(n);
    }
    if (this.pendingBytes > 0) {
      if (this.pendingTotal > 0) {
        this.pending.push(buf);
        this.pendingBytes += buf.length;
        // Still incomplete: nothing to do until more arrives.
        if (this.pendingBytes < this.pendingTotal) return out;
      } else {
        // Not even a whole header (a few bytes): joined at once, so a row starting here streams.
        this.pending.push(buf);
      }
      buf = Buffer.concat(this.pending);
      this.pending = [];
      this.pendingBytes = 0;
      this.pendingTotal = 0;
    }
    let pos = 0;
    // Start of a run of messages forwarded as is, so they go out as one slice.
    let runStart = 0;
    while (buf.length - pos >= 5) {
      const code = buf[pos]!;
      const total = 1 + buf.readInt32BE(pos + 1);
      if (isNotice(code) && total > MAX_WHOLE_NOTICE_BYTES) {
        // Waits for its head only (see pendingTotal below), then skips the rest.
        if (buf.length - pos < MAX_WHOLE_NOTICE_BYTES) break;
        const clipped = clippedErrorOrNotice(
          code,
          buf.subarray(pos + 5, pos + MAX_WHOLE_NOTICE_BYTES),
          total - 5,
        );
        const verdict = this.inspect(code, clipped, 5, clipped.length);
        if (pos > runStart) out.push(buf.subarray(runStart, pos));
        if (verdict !== 'drop') out.push(verdict === 'forward' ? clipped : verdict);
        const here = Math.min(total, buf.length - pos);
        this.skipRemaining = total - here;
        pos += here;
        runStart = pos;
        continue;
      }
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
    if (pos < buf.length) {
      // Copied: the chunk's memory may be reused or is part of a much larger buffer.
      const rest = Buffer.from(buf.subarray(pos));
      this.pending = [rest];
      this.pendingBytes = rest.length;
      // With its header, it is a message the loop does not stream (not a row): wait for all of it,
      // or for the head of a long error or notice.
      const total = rest.length >= 5 ? 1 + rest.readInt32BE(1) : 0;
      this.pendingTotal = isNotice(rest[0]!) ? Math.min(total, MAX_WHOLE_NOTICE_BYTES) : total;
    }
    return out;
  }
}
