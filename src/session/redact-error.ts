/**
 * The server's error message as the decision record keeps it when bind parameters are redacted:
 * PostgreSQL quotes the offending input in its messages (`invalid input syntax for type integer:
 * "…"`), and that input can be a bind value. Every quoted span ("…" or '…') becomes "[redacted]";
 * the rest of the message stays. A span runs from a quote to the last quote of the same kind, so a
 * value that itself contains that quote is never cut in two with its tail left readable (two
 * quoted names in one message are redacted together, with the text between them).
 * Values the server prints unquoted (a RAISE of the application's own) are not recognised.
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
