import { readFileSync } from 'node:fs';
import { scanSync } from 'libpg-query';
import { describe, expect, it } from 'vitest';
import { loadParser } from './parse.js';
import { literalShape } from './literal-shape.js';

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
