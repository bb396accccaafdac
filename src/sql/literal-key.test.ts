import { readFileSync } from 'node:fs';
import { scanSync } from 'libpg-query';
import { describe, expect, it } from 'vitest';
import { loadParser } from './parse.js';
import { literalKey } from './literal-key.js';

describe('literalKey', () => {
  it('gives statements that differ only in literals the same key', () => {
    expect(literalKey('SELECT abalance FROM pgbench_accounts WHERE aid = 17;')).toBe(
      literalKey('SELECT abalance FROM pgbench_accounts WHERE aid = 904211;'),
    );
    expect(literalKey("SELECT * FROM t WHERE a = 'x''y' AND b > 1.5e3")).toBe(
      "SELECT * FROM t WHERE a = '?' AND b > 0.0",
    );
  });

  it('keeps identifiers, parameters and quoted names apart', () => {
    expect(literalKey('SELECT t1.c2 FROM t1 WHERE c = $1')).toBe('SELECT t1.c2 FROM t1 WHERE c = $1');
    expect(literalKey('SELECT "a""1" FROM t')).toBe('SELECT "a""1" FROM t');
    expect(literalKey('SELECT 1 FROM a')).not.toBe(literalKey('SELECT 1 FROM b'));
  });

  it('gives up on anything that could change how later text is read', () => {
    for (const sql of [
      "SELECT E'\\x27' FROM t",
      "SELECT U&'\\0041' FROM t",
      'SELECT $$x$$ FROM t',
      'SELECT 1 -- comment',
      'SELECT /* c */ 1',
      "SELECT x'1F'",
      'SELECT 0x1F',
      "SELECT 'unterminated",
      'SELECT "unterminated',
      'SELECT ☃ FROM t',
    ]) {
      expect(literalKey(sql), sql).toBeUndefined();
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
      const key = literalKey(sql);
      if (key === undefined) continue;
      keyed++;
      // The real scanner's tokens: literals by kind only, everything else by kind and text.
      const tokens = scanSync(sql).tokens.map((t) =>
        /CONST$/.test(t.tokenName) ? t.tokenName : `${t.tokenType}:${t.text}`,
      );
      const signature = tokens.join(' ');
      const seen = byKey.get(key);
      if (seen !== undefined) expect(signature, sql).toBe(seen);
      else byKey.set(key, signature);
    }
    expect(keyed).toBeGreaterThan(10_000);
  });
});
