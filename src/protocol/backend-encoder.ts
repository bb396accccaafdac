import { Backend, type TransactionStatus } from './codes.js';

/**
 * Encoders for the backend messages pgwarden itself sends to clients.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
function message(code: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = code;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function cstrings(...values: string[]): Buffer {
  return Buffer.concat(values.map((v) => Buffer.from(`${v}\0`, 'utf8')));
}

function int32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(v);
  return b;
}

export const authenticationOk = (): Buffer => message(Backend.Authentication, int32(0));
export const authenticationCleartextPassword = (): Buffer => message(Backend.Authentication, int32(3));

export const parameterStatus = (name: string, value: string): Buffer =>
  message(Backend.ParameterStatus, cstrings(name, value));

export const backendKeyData = (processId: number, secretKey: number): Buffer =>
  message(Backend.BackendKeyData, Buffer.concat([int32(processId), int32(secretKey)]));

export const readyForQuery = (status: TransactionStatus): Buffer =>
  message(Backend.ReadyForQuery, Buffer.from(status, 'latin1'));

/** Tells a client which protocol minor version and which `_pq_.` options the server supports. */
export const negotiateProtocolVersion = (
  newestMinor: number,
  unsupportedOptions: readonly string[],
): Buffer =>
  message(
    Backend.NegotiateProtocolVersion,
    Buffer.concat([int32(newestMinor), int32(unsupportedOptions.length), cstrings(...unsupportedOptions)]),
  );

export interface ErrorFields {
  readonly severity: 'ERROR' | 'FATAL' | 'WARNING' | 'NOTICE';
  readonly sqlstate: string;
  readonly message: string;
  readonly detail?: string | undefined;
  readonly hint?: string | undefined;
}

/** Field codes: https://www.postgresql.org/docs/current/protocol-error-fields.html */
function fields(f: ErrorFields): Buffer {
  const parts = [`S${f.severity}`, `V${f.severity}`, `C${f.sqlstate}`, `M${f.message}`];
  if (f.detail) parts.push(`D${f.detail}`);
  if (f.hint) parts.push(`H${f.hint}`);
  return Buffer.concat([cstrings(...parts), Buffer.from([0])]);
}

export const errorResponse = (f: ErrorFields): Buffer => message(Backend.ErrorResponse, fields(f));
export const noticeResponse = (f: ErrorFields): Buffer => message(Backend.NoticeResponse, fields(f));

/** The single-byte answers to SSLRequest and GSSENCRequest. */
export const sslAccepted = (): Buffer => Buffer.from('S');
export const sslDeclined = (): Buffer => Buffer.from('N');

/** The DETAIL field ('D') of an ErrorResponse or NoticeResponse. */
const DETAIL = 0x44;

/**
 * The server's ErrorResponse or NoticeResponse (`code`, and its body) re-encoded without DETAIL
 * (and without a malformed tail), or undefined when it has neither.
 * DETAIL is where the server prints row values ("Failing row contains (...)", "Key (...)=(...)
 * conflicts with existing key (...)"), whole rows with the columns the rules hide or mask, and
 * existing rows of other tenants; the message, SQLSTATE, constraint and column name stay.
 */
export function withoutDetail(
  code: typeof Backend.ErrorResponse | typeof Backend.NoticeResponse,
  body: Buffer,
): Buffer | undefined {
  const kept: Buffer[] = [];
  let found = false;
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const end = body.indexOf(0, pos + 1);
    // An unterminated field cannot be told from a DETAIL: it is dropped, not passed on.
    if (end < 0) {
      found = true;
      break;
    }
    if (body[pos] === DETAIL) found = true;
    else kept.push(body.subarray(pos, end + 1));
    pos = end + 1;
  }
  if (!found) return undefined;
  kept.push(Buffer.from([0]));
  return message(code, Buffer.concat(kept));
}

/** The longest field value a clipped ErrorResponse or NoticeResponse keeps (clippedErrorOrNotice). */
const MAX_CLIPPED_FIELD_BYTES = 16 * 1024;

/**
 * An ErrorResponse or NoticeResponse of `bodyBytes` bytes rebuilt from the first bytes of its body
 * (`head`): its fields, each cut to MAX_CLIPPED_FIELD_BYTES, and the field `head` ends in, with a
 * note saying so. The server quotes input in its messages (`repeat('x', 520*1024*1024)::int`
 * drew a 520 MB one), and the whole of one took pgwarden's memory and then the process.
 */
export function clippedErrorOrNotice(
  code: typeof Backend.ErrorResponse | typeof Backend.NoticeResponse,
  head: Buffer,
  bodyBytes: number,
): Buffer {
  const what = code === Backend.ErrorResponse ? 'error' : 'notice';
  const parts: Buffer[] = [];
  let pos = 0;
  while (pos < head.length && head[pos] !== 0) {
    const end = head.indexOf(0, pos + 1);
    const stop = end < 0 ? head.length : end;
    const cut = end < 0 || stop - (pos + 1) > MAX_CLIPPED_FIELD_BYTES;
    // A character split by the cut reads as U+FFFD: the text stays valid UTF-8.
    let text = head.toString('utf8', pos + 1, Math.min(stop, pos + 1 + MAX_CLIPPED_FIELD_BYTES));
    if (cut) text += `... (pgwarden: the server's ${what} was ${bodyBytes} bytes long; clipped)`;
    parts.push(Buffer.from([head[pos]!]), Buffer.from(`${text}\0`, 'utf8'));
    if (end < 0) break;
    pos = end + 1;
  }
  parts.push(Buffer.from([0]));
  return message(code, Buffer.concat(parts));
}
