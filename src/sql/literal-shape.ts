/**
 * A cheap lexer that finds the plain literals of a statement (numbers and standard '...' strings)
 * so statements that differ only in those values share one cache entry, without parsing. It
 * follows PostgreSQL's lexical rules closely enough to skip what it does not normalise
 * (comments, quoted identifiers, E'' / U&'' / B'' / X'' strings, dollar quotes); anything it is
 * unsure of returns undefined, and the caller falls back to the exact text.
 * https://www.postgresql.org/docs/current/sql-syntax-lexical.html
 */
import type { ScanToken } from './parse.js';

export interface LiteralShape {
  /**
   * The text with each literal replaced by NUL and its class (s: string, i: integer, n: other
   * numeric): NUL cannot occur in a query string, and the class keeps statements whose literals
   * the server would type differently (overloads, implicit casts) apart.
   */
  readonly key: string;
  /** [start, end) of each literal, in order. */
  readonly spans: readonly (readonly [number, number])[];
}

// The lexer runs on every statement that misses the exact-text cache: character codes, not
// regular expressions, in the loop.
//
// Where it and PostgreSQL's scanner (scan.l) disagree on where a string ends, text the lexer takes
// for a literal is SQL to the server: a statement shaped like an allowed one then runs unjudged.
// So each rule below follows scan.l, and anything near a disagreement gives no shape.
const LF = 10;
const CR = 13;
const TAB = 9;
function isNewline(c: number): boolean {
  return c === LF || c === CR;
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isIdent(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || isDigit(c) || c === 95 || c === 36 || c >= 128;
}
const identChar = { test: (ch: string): boolean => ch.length > 0 && isIdent(ch.charCodeAt(0)) };

const CONSTANT = { s: 'SCONST', i: 'ICONST', n: 'FCONST' } as const;

/**
 * Whether PostgreSQL's scanner reads each literal of `shape` as exactly one constant of its class.
 * If it does for one statement, it does for every statement of the same key: the text around the
 * literals is the same, and a literal's own characters cannot move where the scanner ends it. So
 * checking the statement a shape is learnt from guards the cache against any disagreement between
 * this lexer and the server's.
 */
export function agreesWithScanner(shape: LiteralShape, tokens: readonly ScanToken[]): boolean {
  const classes = shape.key.match(/\0[sin]/g) ?? [];
  if (classes.length !== shape.spans.length) return false;
  const byStart = new Map(tokens.map((t) => [t.start, t]));
  return shape.spans.every(([start, end], i) => {
    const t = byStart.get(start);
    const cls = (classes[i] as string)[1] as keyof typeof CONSTANT;
    return t !== undefined && t.end === end && t.tokenName === CONSTANT[cls];
  });
}

export function literalShape(sql: string): LiteralShape | undefined {
  // Parser locations are UTF-8 byte offsets; with ASCII text they equal string indices. Control
  // characters other than tab and the two newlines (form feed and vertical tab are whitespace to
  // some server versions, not to others) are left exact.
  for (let i = 0; i < sql.length; i++) {
    const c = sql.charCodeAt(i);
    if (c > 127 || (c < 32 && c !== TAB && c !== LF && c !== CR) || c === 127) return undefined;
  }
  const spans: [number, number][] = [];
  let out = '';
  let i = 0;
  let last = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i] ?? '';
    const next = sql[i + 1] ?? '';
    if (c === '-' && next === '-') {
      i = endOfLineComment(sql, i);
    } else if (c === '/' && next === '*') {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--;
          i += 2;
        } else i++;
      }
      if (depth > 0) return undefined;
    } else if (c === '"') {
      const e = skipQuoted(sql, i, '"', false);
      if (e < 0) return undefined;
      i = e;
    } else if (c === "'") {
      const prev = sql[i - 1] ?? ' ';
      const prefixed = identChar.test(prev) || prev === '&';
      const before = sql.charCodeAt(i - 2);
      // `$E'` is a lone $ and then an E'' string to the server, `1E'` a number with junk: not
      // worth telling apart from an identifier ending in E.
      if ((prev === 'E' || prev === 'e') && (before === 36 /* $ */ || isDigit(before))) return undefined;
      const escapes = prefixed && (prev === 'E' || prev === 'e') && !identChar.test(sql[i - 2] ?? ' ');
      const e = skipQuoted(sql, i, "'", escapes);
      if (e < 0) return undefined;
      // A string followed by another quote, across whitespace and comments, may continue (scan.l's
      // quotecontinue: a newline, \n or \r, then spaces or -- comments, then '); the continuation
      // keeps an E'' string's backslash escapes. Such text is kept exact.
      if (sql.charCodeAt(afterSpaceAndComments(sql, e)) === 39 /* ' */) return undefined;
      if (!prefixed) {
        out += sql.slice(last, i) + '\u0000s';
        spans.push([i, e]);
        last = e;
      }
      i = e;
    } else if (c === '$') {
      if (isDigit(sql.charCodeAt(i + 1))) {
        i++;
        while (i < n && isDigit(sql.charCodeAt(i))) i++;
        continue;
      }
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      if (!m || identChar.test(sql[i - 1] ?? ' ')) {
        i++;
        continue;
      }
      const close = sql.indexOf(m[0], i + m[0].length);
      if (close < 0) return undefined;
      i = close + m[0].length;
    } else if (isDigit(sql.charCodeAt(i)) || (c === '.' && isDigit(sql.charCodeAt(i + 1)))) {
      // `t1.5` and `..5` are an identifier and .5, and .. and 5, to the server: never valid SQL,
      // and where the number starts is unclear.
      if (c === '.' && i > 0 && (isIdent(sql.charCodeAt(i - 1)) || sql.charCodeAt(i - 1) === 46))
        return undefined;
      if (i > 0 && isIdent(sql.charCodeAt(i - 1))) {
        i++;
        continue;
      }
      let e = i;
      while (e < n && isDigit(sql.charCodeAt(e))) e++;
      let integer = e > i;
      if (sql.charCodeAt(e) === 46 /* . */) {
        integer = false;
        e++;
        while (e < n && isDigit(sql.charCodeAt(e))) e++;
      }
      if ((sql.charCodeAt(e) | 32) === 101 /* e */) {
        const sign = sql.charCodeAt(e + 1) === 43 || sql.charCodeAt(e + 1) === 45 ? 1 : 0;
        if (!isDigit(sql.charCodeAt(e + 1 + sign))) return undefined;
        integer = false;
        e += 1 + sign;
        while (e < n && isDigit(sql.charCodeAt(e))) e++;
      }
      const after = sql.charCodeAt(e);
      if (isIdent(after) || after === 46) return undefined;
      // PostgreSQL makes an Integer of what fits in int4 and a Float of everything else.
      const cls = integer && Number(sql.slice(i, e)) <= 2147483647 ? 'i' : 'n';
      out += sql.slice(last, i) + '\u0000' + cls;
      spans.push([i, e]);
      last = e;
      i = e;
    } else if (isIdent(sql.charCodeAt(i))) {
      while (i < n && isIdent(sql.charCodeAt(i))) i++;
    } else i++;
  }
  return { key: out + sql.slice(last), spans };
}

/** Where a -- comment starting at `i` ends: after its newline, \n or \r (scan.l's non_newline). */
function endOfLineComment(sql: string, i: number): number {
  let e = i + 2;
  while (e < sql.length && !isNewline(sql.charCodeAt(e))) e++;
  return e < sql.length ? e + 1 : e;
}

/** The first position from `i` that is neither whitespace nor inside a comment. */
function afterSpaceAndComments(sql: string, i: number): number {
  let e = i;
  for (;;) {
    const c = sql.charCodeAt(e);
    if (c === 32 || c === TAB || isNewline(c)) e++;
    else if (c === 45 /* - */ && sql.charCodeAt(e + 1) === 45) e = endOfLineComment(sql, e);
    else if (c === 47 /* / */ && sql.charCodeAt(e + 1) === 42 /* * */) {
      const close = sql.indexOf('*/', e + 2);
      if (close < 0) return sql.length;
      e = close + 2;
    } else return e;
  }
}

function skipQuoted(sql: string, start: number, q: string, backslash: boolean): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (backslash && c === '\\') i += 2;
    else if (c === q) {
      if (sql[i + 1] === q) i += 2;
      else return i + 1;
    } else i++;
  }
  return -1;
}
