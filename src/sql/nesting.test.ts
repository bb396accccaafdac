import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_NESTING_ESTIMATE, NESTING_CHECK_CHARS, nestingEstimate } from './nesting.js';
import { loadParser, scanTokens } from './parse.js';

const estimate = (sql: string): number => nestingEstimate(sql, scanTokens(sql));

beforeAll(() => loadParser());

describe('nestingEstimate', () => {
  it('over-estimates the shapes that ran the parser out of stack (red team, round 45)', () => {
    const n = 4000;
    for (const sql of [
      `SELECT 1${'+1'.repeat(n)}`,
      `SELECT 'a'${" || 'a'".repeat(n)}`,
      `SELECT 1${' + NULL'.repeat(n)}`,
      `SELECT x${'::int'.repeat(n)} FROM t`,
      `SELECT ${'NOT '.repeat(n)}true`,
      `SELECT ${'(SELECT '.repeat(n / 2)}1${')'.repeat(n / 2)}`,
      `SELECT ${'CASE WHEN '.repeat(n / 2)}true${' THEN 1 END'.repeat(n / 2)}`,
      `SELECT 1 FROM t${' JOIN t ON true'.repeat(n)}`,
      Array(n).fill('SELECT 1').join(' UNION '),
      `SELECT 1${' OPERATOR(pg_catalog.+) 1'.repeat(n)}`,
      `SELECT ${'f('.repeat(n / 2)}1${')'.repeat(n / 2)}`,
    ])
      expect(estimate(sql), sql.slice(0, 40)).toBeGreaterThan(MAX_NESTING_ESTIMATE);
  });

  it('keeps long flat statements low: lists, AND/OR chains, comparisons, comments', () => {
    const n = 5000;
    for (const sql of [
      `SELECT 1 WHERE ${Array(n).fill('a = 1').join(' OR ')}`,
      `SELECT 1 WHERE ${Array(n).fill('a + 1 > 2').join(' AND ')}`,
      `SELECT 1 WHERE a IN (${Array(n).fill('-1').join(', ')})`,
      `INSERT INTO t VALUES ${Array(n).fill('(1 + 2, -3)').join(', ')}`,
      `SELECT ${Array(n).fill('a * 2').join(', ')} FROM t`,
      `SELECT 1 ${'/**/ '.repeat(n)}`,
    ])
      expect(estimate(sql), sql.slice(0, 40)).toBeLessThan(20);
  });

  it("stays far below the limit over PostgreSQL's regression suite, and needs a long text to reach it", () => {
    let max = 0;
    for (const line of readFileSync('test/corpus/pg-regress.jsonl', 'utf8').trim().split('\n')) {
      const { sql } = JSON.parse(line) as { sql: string };
      try {
        max = Math.max(max, estimate(sql));
      } catch {
        // The scanner refuses some of the suite's deliberate errors.
      }
    }
    expect(max).toBeLessThan(200);
    // At most 2 a character: a text shorter than NESTING_CHECK_CHARS need not be scanned.
    expect(estimate('('.repeat(NESTING_CHECK_CHARS - 1))).toBeLessThanOrEqual(MAX_NESTING_ESTIMATE);
  });
});
