import { PgwardenError } from '../errors/registry.js';
import { StartupCode } from './codes.js';

/**
 * Readers for the bodies of frontend messages pgwarden needs to look inside.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 * Every reader checks bounds: a body that ends early or has trailing bytes is malformed.
 */
class BodyReader {
  private pos: number;
  private readonly end_: number;
  /** Reads `buf` from `start` to `end` (the whole buffer by default), without copying. */
  constructor(
    private readonly buf: Buffer,
    start = 0,
    end = buf.length,
  ) {
    this.pos = start;
    this.end_ = end;
  }

  cstring(): string {
    // The empty name (unnamed statement or portal) is by far the most common: no string to make.
    if (this.pos < this.end_ && this.buf[this.pos] === 0) {
      this.pos++;
      return '';
    }
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0 || end >= this.end_) throw malformed('unterminated string');
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
  int16(): number {
    if (this.pos + 2 > this.end_) throw malformed('message ends early');
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    if (this.pos + 4 > this.end_) throw malformed('message ends early');
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  byte(): number {
    if (this.pos + 1 > this.end_) throw malformed('message ends early');
    return this.buf[this.pos++]!;
  }
  bytes(n: number): Buffer {
    if (n < 0 || this.pos + n > this.end_) throw malformed('message ends early');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  end(): void {
    if (this.pos !== this.end_) throw malformed('trailing bytes in message');
  }
  get remaining(): number {
    return this.end_ - this.pos;
  }
}

function malformed(what: string): PgwardenError {
  return new PgwardenError('PGW_PROTOCOL_VIOLATION', { message: `malformed message: ${what}` });
}

export type StartupPacket =
  | {
      readonly type: 'startup';
      readonly major: number;
      readonly minor: number;
      readonly params: ReadonlyMap<string, string>;
    }
  | { readonly type: 'ssl' }
  | { readonly type: 'gssenc' }
  | { readonly type: 'cancel'; readonly processId: number; readonly secretKey: Buffer }
  | { readonly type: 'unsupported'; readonly major: number; readonly minor: number };

export function readStartupPacket(body: Buffer): StartupPacket {
  const r = new BodyReader(body);
  const code = r.int32();
  if (code === StartupCode.SSLRequest) return (r.end(), { type: 'ssl' });
  if (code === StartupCode.GSSENCRequest) return (r.end(), { type: 'gssenc' });
  if (code === StartupCode.CancelRequest) {
    const processId = r.int32();
    // Protocol 3.2 allows longer secret keys (up to 256 bytes); 3.0 has four.
    const secretKey = r.bytes(r.remaining);
    return { type: 'cancel', processId, secretKey };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) return { type: 'unsupported', major, minor };
  const params = new Map<string, string>();
  while (true) {
    const name = r.cstring();
    if (name === '') break;
    if (params.has(name)) throw malformed(`startup parameter ${name} given twice`);
    params.set(name, r.cstring());
  }
  r.end();
  return { type: 'startup', major, minor, params };
}

export function readPassword(body: Buffer, start = 0, end = body.length): string {
  const r = new BodyReader(body, start, end);
  const s = r.cstring();
  r.end();
  return s;
}

export function readQuery(body: Buffer, start = 0, end = body.length): string {
  return readPassword(body, start, end);
}

/**
 * Where the SQL text of a Query or Parse message lies in `body` (byte offsets), found without
 * decoding it: a text too long to judge is refused unread, not turned into a string first.
 */
export function sqlTextBounds(
  parse: boolean,
  body: Buffer,
  start = 0,
  end = body.length,
): { start: number; end: number } {
  let from = start;
  if (parse) {
    const nameEnd = body.indexOf(0, start);
    if (nameEnd < 0 || nameEnd >= end) throw malformed('unterminated string');
    from = nameEnd + 1;
  }
  const to = body.indexOf(0, from);
  if (to < 0 || to >= end) throw malformed('unterminated string');
  return { start: from, end: to };
}

export interface ParseMessage {
  readonly statement: string;
  readonly query: string;
  readonly paramTypes: readonly number[];
}

export function readParse(body: Buffer, start = 0, end = body.length): ParseMessage {
  const r = new BodyReader(body, start, end);
  const statement = r.cstring();
  const query = r.cstring();
  const n = r.int16();
  if (n < 0) throw malformed('negative parameter count');
  const paramTypes: number[] = [];
  for (let i = 0; i < n; i++) paramTypes.push(r.int32() >>> 0);
  r.end();
  return { statement, query, paramTypes };
}

export interface BindMessage {
  readonly portal: string;
  readonly statement: string;
  /** Format code per parameter (0 text, 1 binary), expanded from the message's short forms. */
  readonly paramFormats: readonly number[];
  /** Parameter values; null for SQL NULL. */
  readonly params: readonly (Buffer | null)[];
}

export function readBind(body: Buffer, start = 0, end = body.length): BindMessage {
  const r = new BodyReader(body, start, end);
  const portal = r.cstring();
  const statement = r.cstring();
  const nf = r.int16();
  const formats: number[] = [];
  for (let i = 0; i < nf; i++) {
    const f = r.int16();
    if (f !== 0 && f !== 1) throw malformed(`unknown parameter format code ${f}`);
    formats.push(f);
  }
  const np = r.int16();
  if (nf < 0 || np < 0) throw malformed('negative count');
  if (nf > 1 && nf !== np) throw malformed('parameter format count does not match parameter count');
  const params: (Buffer | null)[] = [];
  for (let i = 0; i < np; i++) {
    const len = r.int32();
    params.push(len === -1 ? null : r.bytes(len));
  }
  const nr = r.int16();
  if (nr < 0) throw malformed('negative result format count');
  for (let i = 0; i < nr; i++) r.int16();
  r.end();
  const paramFormats = params.map((_, i) => (nf === 0 ? 0 : nf === 1 ? formats[0]! : formats[i]!));
  return { portal, statement, paramFormats, params };
}

/**
 * Only the names of a Bind: what routing needs. Parameter values are read (readBind) only when the
 * statement's verdict constrains one; the server validates the rest of the message itself.
 */
export function readBindNames(
  body: Buffer,
  start = 0,
  end = body.length,
): { portal: string; statement: string } {
  const r = new BodyReader(body, start, end);
  const portal = r.cstring();
  const statement = r.cstring();
  return { portal, statement };
}

/**
 * Whether a Bind carries parameter values, read without validating the message (the server does
 * that). A body too short to tell answers true: the caller uses it to decide what to redact.
 */
export function bindHasParameters(body: Buffer, start = 0, end = body.length): boolean {
  let at = body.indexOf(0, start);
  if (at < 0 || at >= end) return true;
  at = body.indexOf(0, at + 1);
  if (at < 0 || at + 3 > end) return true;
  const formats = body.readInt16BE(at + 1);
  const count = at + 3 + 2 * Math.max(0, formats);
  if (count + 2 > end) return true;
  return body.readInt16BE(count) !== 0;
}

export interface TargetMessage {
  /** 'S' for a prepared statement, 'P' for a portal. */
  readonly target: 'S' | 'P';
  readonly name: string;
}

/** Describe and Close share a body: a target byte and a name. */
export function readTarget(body: Buffer, start = 0, end = body.length): TargetMessage {
  const r = new BodyReader(body, start, end);
  const t = r.byte();
  if (t !== 0x53 && t !== 0x50) throw malformed('Describe/Close target must be S or P');
  const name = r.cstring();
  r.end();
  return { target: t === 0x53 ? 'S' : 'P', name };
}

export interface ExecuteMessage {
  readonly portal: string;
  readonly maxRows: number;
}

export function readExecute(body: Buffer, start = 0, end = body.length): ExecuteMessage {
  const r = new BodyReader(body, start, end);
  const portal = r.cstring();
  const maxRows = r.int32();
  r.end();
  return { portal, maxRows };
}

export function expectEmpty(body: Buffer, start = 0, end = body.length): void {
  new BodyReader(body, start, end).end();
}

/** The first `maxBytes` bytes of a UTF-8 text in `buf`, cut before a character, never inside one. */
export function utf8Head(buf: Buffer, start: number, end: number, maxBytes: number): string {
  let stop = Math.min(end, start + maxBytes);
  // A byte 10xxxxxx continues a character: the cut goes before the byte that starts it.
  if (stop < end) while (stop > start && ((buf[stop] ?? 0) & 0xc0) === 0x80) stop--;
  return buf.toString('utf8', start, stop);
}
