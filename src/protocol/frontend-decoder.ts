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

/**
 * Splits a client's byte stream into messages. During startup messages are untyped
 * (Int32 length, then body); afterwards each starts with a type byte.
 * https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
 * A length outside [4, maxMessageBytes] is an error before any of the message is buffered, so a
 * client cannot make pgwarden hold more than one maximum-size message.
 */
export class FrontendDecoder {
  private buffer: Buffer = Buffer.alloc(0);
  private offset = 0;
  private typed = false;

  /** Startup packets are small (PostgreSQL caps them at 10,000 bytes); later messages may be larger. */
  constructor(private maxMessageBytes: number) {}

  /** After the startup packet, messages carry a type byte. */
  startTypedPhase(maxMessageBytes: number): void {
    this.typed = true;
    this.maxMessageBytes = maxMessageBytes;
  }

  /** Bytes received but not yet returned as messages. */
  get pendingBytes(): number {
    return this.buffer.length - this.offset;
  }

  push(chunk: Buffer): void {
    if (this.offset >= this.buffer.length) {
      this.buffer = chunk;
    } else {
      this.buffer = Buffer.concat([this.buffer.subarray(this.offset), chunk]);
    }
    this.offset = 0;
  }

  /** The next whole message, or undefined if more bytes are needed. */
  next(): FrontendMessage | undefined {
    const header = this.typed ? 5 : 4;
    const available = this.buffer.length - this.offset;
    if (available < header) return undefined;
    const start = this.offset;
    const code = this.typed ? this.buffer[start]! : 0;
    const length = this.buffer.readInt32BE(this.typed ? start + 1 : start);
    if (length < 4)
      throw new PgwardenError('PGW_PROTOCOL_VIOLATION', { message: `invalid message length ${length}` });
    if (length > this.maxMessageBytes) {
      throw new PgwardenError('PGW_MESSAGE_TOO_LARGE', {
        message: `message of ${length} bytes exceeds the limit of ${this.maxMessageBytes}`,
      });
    }
    const total = length + (this.typed ? 1 : 0);
    if (available < total) return undefined;
    this.offset = start + total;
    return new FrontendMessage(code, this.buffer, start, start + header, start + total);
  }
}
