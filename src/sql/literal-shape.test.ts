import { readFileSync } from 'node:fs';
import { scanSync } from 'libpg-query';
import { describe, expect, it } from 'vitest';
import { loadParser, scanTokens } from './parse.js';
import { agreesWithScanner, literalShape } from './literal-shape.js';

describe('literalShape', () => {
  it('marks each literal with its class and gives its span', () => {
    const sql = "SELECT * FROM t WHERE a = 'x''y' AND b > 1.5e3 AND c = 42 AND d = 12345678901";
    const shape = literalShape(sql)!;
    expect(shape.key).toBe('SELECT * FROM t WHERE a = \0s AND b > \0n AND c = \0i AND d = \0n');
    expect(shape.spans.map(([s, e]) => sql.slice(s, e))).toEqual(["'x''y'", '1.5e3', '42', '12345678901']);
    expect(literalShape("SELECT f('1')")!.key).not.toBe(literalShape('SELECT f(1)')!.key);
  });

  it('keeps identifiers, parameters and text it does not normalise exactly as written', () => {
    expect(literalShape('SELECT t1.c2 FROM t1 WHERE c = $1')!.key).toBe('SELECT t1.c2 FROM t1 WHERE c = $1');
    expect(literalShape('SELECT 1 FROM a')!.key).not.toBe(literalShape('SELECT 1 FROM b')!.key);
    for (const [a, b] of [
      ["SELECT E'\\x27' FROM t", "SELECT E'x' FROM t"],
      ['SELECT $$a$$ FROM t', 'SELECT $$b$$ FROM t'],
      ["SELECT x'1F'", "SELECT x'2F'"],
    ]) {
      expect(literalShape(a!)?.key ?? a, a).not.toBe(literalShape(b!)?.key ?? b);
    }
    for (const sql of ["SELECT 'unterminated", 'SELECT "unterminated', 'SELECT 0x1F', 'SELECT ☃ FROM t']) {
      expect(literalShape(sql), sql).toBeUndefined();
    }
  });

  it('keeps exact what PostgreSQL may read otherwise: \\r ends comments and continues strings', () => {
    // Found by the red team: each pair had one key, the first was allowed and cached, and the
    // second ran unjudged, reading other tenants' SSNs (the server reads E'a'\r'\', ' as one string).
    for (const [benign, attack] of [
      ["SELECT E'a'\r'x', 'b'", "SELECT E'a'\r'\\', ' AS z, ssn FROM customers --'"],
      [
        "SELECT 1 -- \r, '\n, ', 2 --' AS y FROM products",
        "SELECT 1 -- \r, '\n, ', ssn FROM customers --' AS y FROM products",
      ],
    ] as const) {
      const a = literalShape(benign);
      const b = literalShape(attack);
      if (a && b) expect(a.key, attack).not.toBe(b.key);
    }
    // Benign look-alikes keep their shape: CRLF line ends, comments ended by \r.
    const crlf = literalShape("SELECT id\r\nFROM orders\r\nWHERE id = 7 AND note = 'x' -- last\r\n")!;
    expect(crlf.key).toBe('SELECT id\r\nFROM orders\r\nWHERE id = \0i AND note = \0s -- last\r\n');
    expect(literalShape("SELECT 'a' -- c\r, 5")!.key).toBe('SELECT \0s -- c\r, \0i');
  });

  it('agreesWithScanner: every literal must be one constant of its class to the server', async () => {
    await loadParser();
    const sql = "SELECT 'a', 5, 2.5 FROM t";
    const shape = literalShape(sql)!;
    expect(agreesWithScanner(shape, scanTokens(sql))).toBe(true);
    // What the old lexer made of an E'' string continued across \r: 'x' is no constant of its own.
    const continued = "SELECT E'a'\r'x'";
    const wrong = { key: "SELECT E'a'\r\0s", spans: [[12, 15]] as const };
    expect(agreesWithScanner(wrong, scanTokens(continued))).toBe(false);
    expect(
      agreesWithScanner({ key: shape.key.replace('\0i', '\0n'), spans: shape.spans }, scanTokens(sql)),
    ).toBe(false);
  });

  it('marks as literals only what PostgreSQL scans as one constant of that class (fuzzed)', async () => {
    await loadParser();
    // Fragments around every rule of the lexer: quotes and their prefixes, escapes, newlines,
    // comments, dollar quotes, parameters, numbers and what may stick to them.
    const fragments = [
      ' ',
      ' ',
      "'",
      "'",
      "''",
      'E',
      'e',
      'U&',
      'N',
      'B',
      'X',
      'x',
      'a',
      '_',
      '\\',
      "\\'",
      '\n',
      '\r',
      '\r\n',
      '\t',
      '--',
      '/*',
      '*/',
      '$$',
      '$a$',
      '$',
      '$1',
      '1',
      '42',
      '2.5',
      '.',
      '..',
      'e5',
      '1e',
      '0x',
      '"',
      ',',
      '(',
      ')',
      '::',
      '-',
      '+',
      '&',
      ';',
      't1',
      'UESCAPE',
    ];
    let seed = 0x9e3779b9;
    const random = (n: number): number => {
      seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
      return seed % n;
    };
    const constant = { s: 'SCONST', i: 'ICONST', n: 'FCONST' } as const;
    let checked = 0;
    for (let k = 0; k < 150_000; k++) {
      let sql = 'SELECT ';
      for (let f = 2 + random(12); f > 0; f--) sql += fragments[random(fragments.length)];
      const shape = literalShape(sql);
      if (shape === undefined || shape.spans.length === 0) continue;
      let tokens;
      try {
        tokens = scanSync(sql).tokens;
      } catch {
        continue; // the server refuses it too
      }
      const classes = [...shape.key.matchAll(/\0([sin])/g)].map((m) => m[1] as 's' | 'i' | 'n');
      shape.spans.forEach(([start, end], i) => {
        const t = tokens.find((x) => x.start === start);
        expect({ sql, token: t && [t.end, t.tokenName] }).toEqual({
          sql,
          token: [end, constant[classes[i] as 's' | 'i' | 'n']],
        });
      });
      checked++;
    }
    expect(checked).toBeGreaterThan(10_000);
  });

  it('gives one key only to statements whose PostgreSQL tokens differ in literal values alone (corpus)', async () => {
    await loadParser();
    const lines = readFileSync(new URL('../../test/corpus/pg-regress.jsonl', import.meta.url), 'utf8').split(
      '\n',
    );
    const byKey = new Map<string, string>();
    let keyed = 0;
    for (const line of lines) {
      if (!line) continue;
      const { sql } = JSON.parse(line) as { sql: string };
      const shape = literalShape(sql);
      if (shape === undefined) continue;
      keyed++;
      const signature = scanSync(sql)
        .tokens.filter((t) => !/COMMENT$/.test(t.tokenName))
        .map((t) => (/CONST$/.test(t.tokenName) ? t.tokenName : `${t.tokenType}:${t.text}`))
        .join(' ');
      const seen = byKey.get(shape.key);
      if (seen !== undefined) expect(signature, sql).toBe(seen);
      else byKey.set(shape.key, signature);
    }
    expect(keyed).toBeGreaterThan(10_000);
  });
});
