/**
 * Characters JSON allows raw that readers of NDJSON trip over: C1 controls (U+0085 ends a line for
 * Python's `str.splitlines`, U+009B starts terminal sequences), the Unicode bidi controls (they
 * reorder what a terminal shows), the line and paragraph separators (U+2028, U+2029: line ends
 * for splitlines and for many editors and log viewers) and U+FEFF (a byte-order mark some readers
 * drop). C0 controls JSON escapes already.
 */
const RAW_UNSAFE = /[\u0080-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/**
 * `JSON.stringify(value)` with the characters above written as `\uXXXX` escapes: the same value
 * for every JSON reader, one line for every line splitter, and nothing a terminal acts on.
 */
export function safeJson(value: unknown): string {
  const text = JSON.stringify(value);
  // Inside JSON text these characters only occur in strings, where the escape means the same.
  return RAW_UNSAFE.test(text)
    ? text.replace(RAW_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    : text;
}
