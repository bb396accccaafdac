/**
 * A cache key for a statement's shape: the SQL text with plain string literals replaced by '?'
 * and numeric literals by 0 (integer) or 0.0 (other numerics), so `... WHERE aid = 17` and `... WHERE aid = 42` share one judgement.
 *
 * This is a deliberately small lexer, not a second grammar: it understands only what it must to
 * find literal boundaries under the pinned standard_conforming_strings=on (where '' is the only
 * escape inside '...'), and gives up (returns undefined, meaning "do not cache by shape") on
 * anything else that could change how a later character is read: comments, dollar quoting,
 * prefixed strings (E'', U&'', B'', X'', N''), backslashes and non-ASCII text outside literals.
 * Giving up only costs a parse; it can never make two different token streams share a key.
 * https://www.postgresql.org/docs/current/sql-syntax-lexical.html
 */
export function literalKey(sql: string): string | undefined {
  let out = '';
  let i = 0;
  let copied = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c === 0x27 /* ' */) {
      const prev = i > 0 ? sql.charCodeAt(i - 1) : 0x20;
      if (isIdentChar(prev) || prev === 0x26 /* & */) return undefined;
      let j = i + 1;
      for (;;) {
        if (j >= n) return undefined;
        if (sql.charCodeAt(j) === 0x27) {
          if (sql.charCodeAt(j + 1) === 0x27) {
            j += 2;
            continue;
          }
          break;
        }
        j++;
      }
      out += sql.slice(copied, i) + "'?'";
      i = j + 1;
      copied = i;
      continue;
    }
    if (c === 0x22 /* " */) {
      let j = i + 1;
      for (;;) {
        if (j >= n) return undefined;
        if (sql.charCodeAt(j) === 0x22) {
          if (sql.charCodeAt(j + 1) === 0x22) {
            j += 2;
            continue;
          }
          break;
        }
        j++;
      }
      i = j + 1;
      continue;
    }
    if (isDigit(c) || (c === 0x2e /* . */ && isDigit(sql.charCodeAt(i + 1)))) {
      const prev = i > 0 ? sql.charCodeAt(i - 1) : 0x20;
      if (isIdentChar(prev) || prev === 0x24 /* $ */) {
        i++;
        continue;
      }
      let j = i;
      while (j < n && (isDigit(sql.charCodeAt(j)) || sql.charCodeAt(j) === 0x2e)) j++;
      if (j < n && (sql.charCodeAt(j) | 0x20) === 0x65 /* e */) {
        j++;
        if (sql.charCodeAt(j) === 0x2b || sql.charCodeAt(j) === 0x2d) j++;
        while (j < n && isDigit(sql.charCodeAt(j))) j++;
      }
      // 0x1F, 1_000, 1abc: leave anything unusual to the real parser.
      if (j < n && (isIdentChar(sql.charCodeAt(j)) || sql.charCodeAt(j) === 0x2e)) return undefined;
      // The parser makes an Integer of what fits in int4 and a Float of everything else; the
      // placeholder keeps that class so overload resolution sees the same types.
      const text = sql.slice(i, j);
      const integer = /^\d+$/.test(text);
      if (integer && text.length >= 10) {
        i = j;
        continue;
      }
      out += sql.slice(copied, i) + (integer ? '0' : '0.0');
      i = j;
      copied = i;
      continue;
    }
    if (c === 0x24 /* $ */) {
      if (!isDigit(sql.charCodeAt(i + 1))) return undefined;
      i++;
      continue;
    }
    if (c === 0x2d /* - */ && sql.charCodeAt(i + 1) === 0x2d) return undefined;
    if (c === 0x2f /* / */ && sql.charCodeAt(i + 1) === 0x2a) return undefined;
    if (c === 0x5c /* \ */ || c > 0x7e) return undefined;
    i++;
  }
  return out + sql.slice(copied);
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isIdentChar(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || isDigit(c) || c === 0x5f || c === 0x24;
}
