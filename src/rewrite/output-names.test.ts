import { beforeAll, describe, expect, it } from 'vitest';
import { loadParser, parseSql } from '../sql/parse.js';
import { outputNames } from './output-names.js';

const namesOf = (sql: string): string[] =>
  outputNames(parseSql(sql).stmts[0]?.stmt.SelectStmt as Record<string, unknown>);

describe('the column names a SELECT gives its result', () => {
  beforeAll(loadParser);

  it('are the labels PostgreSQL gives, where the text tells them', () => {
    expect(namesOf('SELECT a, t.b, c AS d, upper(x), y::int, (z).f, 1 FROM t')).toEqual([
      'a',
      'b',
      'd',
      'upper',
      'y',
      'f',
    ]);
    expect(namesOf('SELECT a AS x FROM t UNION SELECT b FROM u')).toEqual(['x']);
    expect(namesOf('VALUES (1, 2)')).toEqual(['column1', 'column2']);
    // `*` is not told: its columns count as unknown, never as some other name.
    expect(namesOf('SELECT *, t.*, a FROM t')).toEqual(['a']);
  });
});
