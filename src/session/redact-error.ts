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
 * The texts a Bind's parameter values can appear as in a server message: a text-format value as
 * it is, a binary integer as its decimal digits (the server prints numbers unquoted).
 */
export function valueTexts(params: readonly (Buffer | null)[], formats: readonly number[]): string[] {
  const out: string[] = [];
  params.forEach((p, i) => {
    if (p === null) return;
    if ((formats[i] ?? 0) === 0) out.push(p.toString('utf8'));
    else if (p.length === 2) out.push(String(p.readInt16BE(0)));
    else if (p.length === 4) out.push(String(p.readInt32BE(0)));
    else if (p.length === 8) out.push(String(p.readBigInt64BE(0)));
  });
  return out.filter((v) => v.trim().length >= MIN_REDACTED_VALUE);
}

/** Every occurrence of one of `values` in `message` becomes "[redacted]", longest values first. */
export function redactValues(message: string, values: readonly string[]): string {
  let out = message;
  for (const v of [...values].sort((a, b) => b.length - a.length)) out = out.split(v).join(REDACTED);
  return out;
}
