import { beforeAll, describe, expect, it } from 'vitest';
import { deparseStatements } from './deparse.js';
import { loadParser, parseSql } from './parse.js';

beforeAll(async () => {
  await loadParser();
});

const roundTrip = (sql: string): string => deparseStatements(parseSql(sql).stmts.map((s) => s.stmt));

describe('the SQL printer', () => {
  it('parenthesizes what a subscript or field selection follows, so its output parses again', () => {
    // pgsql-deparser printed `ARRAY[1, 2][1]`, which does not parse: a rewrite holding one was refused.
    for (const [sql, printed] of [
      ['SELECT (ARRAY[1, 2])[1]', 'SELECT (ARRAY[1, 2])[1]'],
      ['SELECT (ARRAY[1, 2])[1:2]', 'SELECT (ARRAY[1, 2])[1:2]'],
      ['SELECT (CASE WHEN true THEN ARRAY[1] END)[1]', 'SELECT (CASE WHEN true THEN ARRAY[1] END)[1]'],
      ["SELECT (COALESCE(NULL, '{1}'::int[]))[1]", "SELECT (COALESCE(NULL, CAST('{1}' AS int[])))[1]"],
    ]) {
      const out = roundTrip(sql!);
      expect(out).toBe(printed);
      expect(() => parseSql(out)).not.toThrow();
    }
    // What it already printed well stays as it was.
    expect(roundTrip('SELECT (a.b).c, (f(x))[1], $1[1]')).toBe('SELECT (a.b).c, (f(x))[1], ($1)[1]');
  });
});
