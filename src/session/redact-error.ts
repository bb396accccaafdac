import { readBind } from '../protocol/frontend-messages.js';
import type { Secrets } from './pending.js';

/**
 * The server's error message as the decision record keeps it when bind parameters are redacted:
 * PostgreSQL quotes the offending input in its messages (`invalid input syntax for type integer:
 * "…"`), and that input can be a bind value. Every quoted span ("…" or '…') becomes "[redacted]";
 * the rest of the message stays. A span runs from a quote to the last quote of the same kind, so a
 * value that itself contains that quote is never cut in two with its tail left readable (two
 * quoted names in one message are redacted together, with the text between them).
 * Values the server prints unquoted (`chr($1::int)`: "requested character too large for encoding:
 * 123456789") are found by value (redactValues).
 */
export const REDACTED = '[redacted]';

export function redactQuoted(message: string): string {
  let out = '';
  let i = 0;
  while (i < message.length) {
    const dq = message.indexOf('"', i);
    const sq = message.indexOf("'", i);
    const at = dq < 0 ? sq : sq < 0 ? dq : Math.min(dq, sq);
    if (at < 0) break;
    const close = message.lastIndexOf(message[at] as string);
    if (close === at) {
      // A lone quote: what follows it may be the value itself.
      out += message.slice(i, at) + REDACTED;
      return out;
    }
    out += message.slice(i, at) + REDACTED;
    i = close + 1;
  }
  return out + message.slice(i);
}

/** Values shorter than this are left: a one-character value would blank every such character. */
const MIN_REDACTED_VALUE = 2;

/**
 * The texts a Bind's parameter values can appear as in a server message. A text-format value as it
 * is and, if it is a number, as the server prints it once read (`+0123_4.0` as `1234`). A binary
 * value's type is the server's to know, so every reading that could be printed: its UTF-8 (text
 * types are sent as their bytes), and an integer or float of its width (Npgsql and asyncpg send
 * every parameter binary; red team, round 26). numeric, date/time and uuid in binary are not read.
 */
export function valueTexts(params: readonly (Buffer | null)[], formats: readonly number[]): string[] {
  const out = new Set<string>();
  const add = (v: string): void => {
    const t = v.trim();
    if (t.length < MIN_REDACTED_VALUE) return;
    out.add(t);
    for (const n of [numberAsPrinted(t), otherNumberAsPrinted(t)])
      if (n !== undefined && n.length >= MIN_REDACTED_VALUE) out.add(n);
  };
  params.forEach((p, i) => {
    if (p === null) return;
    add(p.toString('utf8'));
    if ((formats[i] ?? 0) === 0) return;
    if (p.length === 2) add(String(p.readInt16BE(0)));
    if (p.length === 4) add(String(p.readInt32BE(0)));
    if (p.length === 4 && Number.isFinite(p.readFloatBE(0))) add(String(p.readFloatBE(0)));
    if (p.length === 8) add(String(p.readBigInt64BE(0)));
    if (p.length === 8 && Number.isFinite(p.readDoubleBE(0))) add(String(p.readDoubleBE(0)));
  });
  return [...out];
}

/**
 * The largest Bind kept for redacting its values from a later error message, and the most values
 * looked for in one. A larger Bind, or one with more values, has its error messages withheld from
 * the record (the SQLSTATE stays): finding 32,767 values in a message took 250 ms of the event
 * loop every session shares, and a Bind per named portal kept up to 16 MB each (red team, round
 * 32). Parameter sets of ordinary statements are far below both.
 */
const MAX_KEPT_BIND_BYTES = 8 * 1024;
const MAX_VALUES_LOOKED_FOR = 1000;

/** What the record keeps of an error message that may quote values pgwarden cannot look for. */
export const WITHHELD_MESSAGE =
  "[pgwarden: the server's message is not recorded: it may quote a parameter value, and the statement's parameters were too many or too large to look for]";

/** A Bind body as kept for redaction: a copy, or 'withheld' when too large. */
export function keptBind(body: Buffer): Secrets {
  return body.length <= MAX_KEPT_BIND_BYTES ? Buffer.from(body) : 'withheld';
}

/** The server's error message as recorded with the values of these Binds redacted. */
export function redactedError(message: string, binds: readonly (Secrets | undefined)[]): string {
  const texts: string[] = [];
  for (const bind of binds) {
    const t = bindValueTexts(bind);
    if (t === undefined) return WITHHELD_MESSAGE;
    texts.push(...t);
    if (texts.length > MAX_VALUES_LOOKED_FOR) return WITHHELD_MESSAGE;
  }
  return redactValues(redactQuoted(message), texts);
}

/** The texts to redact for the values of a Bind body (kept as it came); undefined: too many. */
function bindValueTexts(bind: Secrets | undefined): string[] | undefined {
  if (bind === undefined) return [];
  if (bind === 'withheld') return undefined;
  try {
    const { params, paramFormats } = readBind(bind);
    if (params.length > MAX_VALUES_LOOKED_FOR) return undefined;
    return valueTexts(params, paramFormats);
  } catch {
    // A Bind the server refused as malformed: its error quotes nothing of it.
    return [];
  }
}

/** A decimal number as the server prints it after reading it: no +, leading zeros, _ or zero fraction. */
function numberAsPrinted(v: string): string | undefined {
  if (!/^[+-]?[\d_]+(\.\d*)?$/.test(v)) return undefined;
  const [whole = '', fraction = ''] = v.replace(/^\+/, '').replace(/_/g, '').split('.');
  const sign = whole.startsWith('-') ? '-' : '';
  const digits = whole.replace(/^-/, '').replace(/^0+(?=\d)/, '');
  return sign + digits + (/^0*$/.test(fraction) ? '' : `.${fraction.replace(/0+$/, '')}`);
}

/**
 * A number in another form than plain decimal, as the server prints it once read: hexadecimal,
 * octal or binary integers (`0x1E8483` is 2000003, PostgreSQL 16 and later) and exponents
 * (`2.5e6` is 2500000 as numeric or float; red team, round 35).
 */
function otherNumberAsPrinted(v: string): string | undefined {
  const t = v.replace(/_/g, '');
  const radix = /^([+-]?)0([xob])([0-9a-f]+)$/i.exec(t);
  if (radix) {
    try {
      const n = BigInt(`0${radix[2]!.toLowerCase()}${radix[3]}`);
      return `${radix[1] === '-' && n !== 0n ? '-' : ''}${n}`;
    } catch {
      return undefined;
    }
  }
  if (!/^[+-]?(\d+\.?\d*|\.\d+)e[+-]?\d+$/i.test(t)) return undefined;
  const n = Number(t);
  if (!Number.isFinite(n)) return undefined;
  return Number.isInteger(n) && Math.abs(n) < 1e21 ? BigInt(n).toString() : String(n);
}

/** Every occurrence of one of `values` in `message` becomes "[redacted]", longest values first. */
export function redactValues(message: string, values: readonly string[]): string {
  let out = message;
  for (const v of [...values].sort((a, b) => b.length - a.length))
    if (out.includes(v)) out = out.split(v).join(REDACTED);
  return out;
}
