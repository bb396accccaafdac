import { PgwardenError } from '../errors/registry.js';

/**
 * A message as it arrived: its code and where it lies in the received bytes. Body and raw views
 * are made only when asked for, because most messages are forwarded as part of a larger slice
 * and never looked at byte by byte.
 */
export class FrontendMessage {
  constructor(
    /** The type byte, or 0 for untyped startup-phase messages. */
    readonly code: number,
    /** The buffer holding the message. */
    readonly buffer: Buffer,
    /** Offset of the message's first byte (type byte or length) in `buffer`. */
    readonly start: number,
    /** Offset of the body's first byte, after the length word. */
    readonly bodyStart: number,
    /** Offset just past the message. */
    readonly end: number,
  ) {}

  /** The message body after the length word. */
  get body(): Buffer {
    return this.buffer.subarray(this.bodyStart, this.end);
  }

  /** The whole message including type byte and length, for forwarding as is. */
  get raw(): Buffer {
    return this.buffer.subarray(this.start, this.end);
  }
}

/** Chunks smaller than this are copied into a shared buffer of SPARE_BYTES rather than kept. */
const SMALL_CHUNK = 2048;
const SPARE_BYTES = 16 * 1024;

/**
 * Splits a client's byte stream into messages. During startup messages are untyped
 * (Int32 length, then body); afterwards each starts with a type byte.
 * https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
 * A length outside [4, maxMessageBytes] is an error before any of the message is buffered, so a
 * client cannot make pgwarden hold more than one maximum-size message.
 *
 * Received chunks are kept as they arrived, with a running length (small ones are gathered into
 * a shared buffer); a message that lies within one chunk is a view of it, and a message spread
 * over several chunks is copied once, when its last byte has arrived. Every byte is copied at
 * most twice, so decoding is linear in the bytes received however small the chunks (re-joining the unfinished bytes on every chunk would be
 * quadratic: seconds of blocked event loop for one 16 MB message sent in small pieces).
 */
export class FrontendDecoder {
  /** Chunks not yet wholly returned as messages; the first is read from `offset`. */
  private chunks: Buffer[] = [];
  private offset = 0;
  /** Bytes in `chunks` from `offset` on. */
  private queued = 0;
  private typed = false;
  /** Where small chunks are gathered; `spareView` is its used part, an entry of `chunks`. */
  private spare: Buffer | undefined;
  private spareView: Buffer | undefined;
  private spareUsed = 0;

  /** Startup packets are small (PostgreSQL caps them at 10,000 bytes); later messages may be larger. */
  constructor(private maxMessageBytes: number) {}

  /** After the startup packet, messages carry a type byte. */
  startTypedPhase(maxMessageBytes: number): void {
    this.typed = true;
    this.maxMessageBytes = maxMessageBytes;
  }

  /** Changes the largest message accepted from now on (e.g. once the client has authenticated). */
  setMaxMessageBytes(maxMessageBytes: number): void {
    this.maxMessageBytes = maxMessageBytes;
  }

  /** The largest message accepted now. */
  get maxBytes(): number {
    return this.maxMessageBytes;
  }

  /** Bytes received but not yet returned as messages. */
  get pendingBytes(): number {
    return this.queued;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.queued += chunk.length;
    const last = this.chunks.at(-1);
    if (chunk.length >= SMALL_CHUNK || last === undefined) {
      this.chunks.push(chunk);
      return;
    }
    // Small chunks behind unfinished bytes are gathered into one buffer, so a client that trickles
    // bytes cannot make pgwarden hold one Buffer object per byte. Only bytes past `spareUsed` are
    // ever written, so messages already returned as views of the spare buffer never change.
    if (this.spare && last === this.spareView && this.spareUsed + chunk.length <= this.spare.length) {
      chunk.copy(this.spare, this.spareUsed);
      this.spareUsed += chunk.length;
      this.spareView = this.spare.subarray(0, this.spareUsed);
      this.chunks[this.chunks.length - 1] = this.spareView;
      return;
    }
    this.spare = Buffer.allocUnsafe(SPARE_BYTES);
    chunk.copy(this.spare, 0);
    this.spareUsed = chunk.length;
    this.spareView = this.spare.subarray(0, this.spareUsed);
    this.chunks.push(this.spareView);
  }

  /** The byte `i` places after the read position (i < queued). */
  private peek(i: number): number {
    let at = this.offset + i;
    for (const c of this.chunks) {
      if (at < c.length) return c[at]!;
      at -= c.length;
    }
    throw new RangeError('peek past the received bytes');
  }

  /** The next whole message, or undefined if more bytes are needed. */
  next(): FrontendMessage | undefined {
    const header = this.typed ? 5 : 4;
    if (this.queued < header) return undefined;
    const l = this.typed ? 1 : 0;
    const head = this.chunks[0]!;
    // Nearly always the header lies in the first chunk; peek walks the chunks only when it is split.
    const whole = head.length - this.offset >= header;
    const code = !this.typed ? 0 : whole ? head[this.offset]! : this.peek(0);
    // Unsigned bytes into a signed Int32, as readInt32BE reads them.
    const length = whole
      ? head.readInt32BE(this.offset + l)
      : (this.peek(l) << 24) | (this.peek(l + 1) << 16) | (this.peek(l + 2) << 8) | this.peek(l + 3) | 0;
    if (length < 4)
      throw new PgwardenError('PGW_PROTOCOL_VIOLATION', { message: `invalid message length ${length}` });
    if (length > this.maxMessageBytes) {
      throw new PgwardenError('PGW_MESSAGE_TOO_LARGE', {
        message: `message of ${length} bytes exceeds the limit of ${this.maxMessageBytes}`,
      });
    }
    const total = length + l;
    if (this.queued < total) return undefined;
    const first = this.chunks[0]!;
    const start = this.offset;
    if (first.length - start >= total) {
      // Within one chunk: a view, no copy.
      this.offset = start + total;
      this.queued -= total;
      if (this.offset === first.length) {
        this.chunks.shift();
        this.offset = 0;
      }
      return new FrontendMessage(code, first, start, start + header, start + total);
    }
    // Spread over chunks: copied once, now that it is complete.
    const parts: Buffer[] = [];
    let need = total;
    let used = 0;
    let from = start;
    while (need > 0) {
      const c = this.chunks[used]!;
      const take = Math.min(c.length - from, need);
      parts.push(c.subarray(from, from + take));
      need -= take;
      if (from + take === c.length) {
        used++;
        from = 0;
      } else {
        from += take;
      }
    }
    this.chunks.splice(0, used);
    this.offset = from;
    this.queued -= total;
    const message = Buffer.concat(parts, total);
    return new FrontendMessage(code, message, 0, header, total);
  }
}
