import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { deparseStatements } from './deparse.js';
import { stripLocations } from './ast.js';
import { loadParser, parseSql } from './parse.js';

beforeAll(async () => {
  await loadParser();
});

const roundTrip = (sql: string): string => deparseStatements(parseSql(sql).stmts.map((s) => s.stmt));
const tree = (sql: string): unknown => stripLocations(parseSql(sql).stmts.map((s) => s.stmt) as never);
/** Each statement, printed and parsed again, gives the tree it was printed from. */
const expectSameTrees = (sqls: readonly string[]): void => {
  for (const sql of sqls) {
    const out = roundTrip(sql);
    expect(tree(out), `${sql} => ${out}`).toEqual(tree(sql));
  }
};

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

  it('prints JSON_VALUE, JSON_QUERY and JSON_EXISTS back to the same parse tree', () => {
    // The library refused them ("does not handle JsonFuncExpr"), so a scoped statement holding one
    // was refused.
    expectSameTrees([
      "SELECT json_value(j, '$.a')",
      "SELECT json_value(j, '$.a' RETURNING int DEFAULT 0 ON EMPTY ERROR ON ERROR)",
      "SELECT json_value(j, '$.a' RETURNING date NULL ON ERROR)",
      "SELECT json_query(j FORMAT JSON, '$.a' PASSING 1 AS x, 'y' AS \"Y\" RETURNING jsonb)",
      "SELECT json_query(j, '$.a' RETURNING text FORMAT JSON WITH CONDITIONAL ARRAY WRAPPER)",
      "SELECT json_query(j, '$.a' WITHOUT WRAPPER KEEP QUOTES EMPTY ARRAY ON EMPTY EMPTY OBJECT ON ERROR)",
      "SELECT json_query(j, '$.a' RETURNING text OMIT QUOTES ON SCALAR STRING)",
      "SELECT json_query(j, '$.a' WITH WRAPPER)",
      "SELECT json_exists(j, '$.a ? (@ > $x)' PASSING $1 AS x UNKNOWN ON ERROR)",
      "SELECT json_exists(j, '$.a' TRUE ON ERROR), json_exists(j, '$.b' FALSE ON ERROR)",
    ]);
  });

  it('keeps XMLSERIALIZE ... INDENT and XMLPARSE ... PRESERVE WHITESPACE, which the library dropped', () => {
    expectSameTrees([
      'SELECT xmlserialize(content x AS text INDENT)',
      'SELECT xmlserialize(document x AS text NO INDENT)',
      'SELECT xmlparse(document x PRESERVE WHITESPACE)',
      'SELECT xmlparse(content x STRIP WHITESPACE)',
    ]);
  });

  it("quotes a CTE's name where it needs quotes (the library printed it bare)", () => {
    expectSameTrees([
      'WITH "a!b" AS (SELECT 1 AS x) SELECT * FROM "a!b"',
      'WITH "Orders"(a, "B") AS (SELECT 1, 2) SELECT * FROM "Orders"',
      'WITH "select" AS (SELECT 1) SELECT * FROM "select"',
      'WITH plain AS MATERIALIZED (SELECT 1) SELECT * FROM plain',
    ]);
  });

  it("prints COPY's options written the old way (psql's \\copy ... with csv header) back to the same tree", () => {
    expectSameTrees([
      'COPY (SELECT 1) TO STDOUT WITH CSV HEADER',
      `COPY t (a, "B") TO STDOUT CSV HEADER DELIMITER ';' NULL 'it''s' QUOTE '"' ESCAPE '\\' FORCE QUOTE a, "B"`,
      `COPY (SELECT 1) TO STDOUT WITH CSV HEADER FORCE QUOTE * ENCODING 'UTF8'`,
      'COPY (SELECT 1) TO STDOUT BINARY',
      'COPY (SELECT 1) TO STDOUT WITH (FORMAT csv, HEADER true, FORCE_QUOTE *)',
      'COPY (SELECT 1) TO STDOUT WITH (FORMAT csv, HEADER)',
    ]);
  });

  it('prints FETCH FIRST ... WITH TIES, which the library printed as LIMIT', () => {
    expectSameTrees([
      'SELECT a FROM t ORDER BY a FETCH FIRST 2 ROWS WITH TIES',
      'SELECT a FROM t ORDER BY a OFFSET 3 ROWS FETCH NEXT (1 + 1) ROWS WITH TIES FOR SHARE',
      'SELECT a FROM t ORDER BY a FETCH FIRST 2 ROWS ONLY',
    ]);
  });

  it('prints JSON_TABLE back to the same parse tree', () => {
    // The library refused it ("does not handle JsonTable"), so a scoped statement holding one was refused.
    expectSameTrees([
      "SELECT * FROM JSON_TABLE(j, '$' COLUMNS (a int))",
      "SELECT jt.* FROM t, JSON_TABLE(t.j, '$.items[*]' AS p PASSING 1 AS x, 'y' AS \"Y\" COLUMNS (ord FOR ORDINALITY, a int PATH '$.a' DEFAULT 0 ON EMPTY ERROR ON ERROR, b text FORMAT JSON PATH '$.b' WITH WRAPPER KEEP QUOTES, c bool EXISTS PATH '$.c' TRUE ON ERROR, NESTED PATH '$.n[*]' AS np COLUMNS (d int PATH '$.d', NESTED '$.e' COLUMNS (e text))) ERROR ON ERROR) AS jt",
      "SELECT * FROM LATERAL JSON_TABLE(j FORMAT JSON, '$' COLUMNS (a text FORMAT JSON ENCODING UTF8 PATH '$' WITHOUT WRAPPER OMIT QUOTES NULL ON EMPTY EMPTY ARRAY ON ERROR, \"B c\" numeric(10, 2) PATH '$.b' DEFAULT $1 ON ERROR)) jt(x, y)",
      "SELECT * FROM JSON_TABLE(jsonb '[]', '$[*]' COLUMNS (a int PATH '$.a' WITH CONDITIONAL WRAPPER, b jsonb PATH '$.b' EMPTY OBJECT ON EMPTY) EMPTY ON ERROR)",
      "SELECT * FROM JSON_TABLE(j, 'strict $.a' COLUMNS (x int EXISTS, y int EXISTS PATH '$.y' UNKNOWN ON ERROR))",
    ]);
  });

  it("prints XMLTABLE back to the same parse tree: every one of PostgreSQL's regression suite", () => {
    // The library printed no XMLTABLE( ... ), no namespaces and quoted PATH expressions as strings.
    const corpus = readFileSync(new URL('../../test/corpus/pg-regress.jsonl', import.meta.url), 'utf8')
      .split('\n')
      .filter((line) => /xmltable/i.test(line))
      .map((line) => (JSON.parse(line) as { sql: string }).sql)
      .filter((sql) => /^\s*(--[^\n]*\n\s*)*(SELECT|EXPLAIN)/i.test(sql));
    expect(corpus.length).toBeGreaterThan(20);
    expectSameTrees([
      ...corpus,
      "SELECT x.* FROM p, LATERAL XMLTABLE(XMLNAMESPACES('http://a' AS a, DEFAULT 'http://d'), '/r/a:row' PASSING BY VALUE (p.doc) BY REF COLUMNS id int PATH '@id' NOT NULL, n FOR ORDINALITY, v text PATH 'v' || $1 DEFAULT upper('none') NULL) AS x(i, o, val)",
    ]);
  });
});
