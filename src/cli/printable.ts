/**
 * Characters a terminal acts on instead of showing: C0 and C1 controls (ESC starts sequences that
 * move the cursor, rewrite the title or the clipboard; BEL; CR and LF forge lines), DEL, the
 * Unicode bidi controls (U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069: they reorder what
 * is shown) and the line and paragraph separators (U+2028, U+2029).
 */
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * A value written by an agent (names, SQL, rule ids, aggregate keys), made safe to print on a
 * responder's terminal: every character above is shown as a visible escape (`\x1b`, `\u202e`,
 * `\n`). Backslashes are left as they are, so SQL reads as written; `--json` gives exact values.
 */
export function printable(value: string): string {
  return value.replace(UNPRINTABLE, (c) => {
    const named = NAMED[c];
    if (named !== undefined) return named;
    const n = c.charCodeAt(0);
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
  });
}
