import type { ScanToken } from './parse.js';

/**
 * How deep the parser's tree for `sql` may go, over-estimated from its tokens, without parsing:
 * each open parenthesis, bracket or CASE counts 2, and each operator that chains to the left
 * within one (`+ - * / % ^ ||`, any other operator symbol, `::`, and the keywords in CHAINS)
 * counts 1 until a comma, semicolon, AND, OR or comparison ends the chain. A sum of 10,000 terms ran the WebAssembly
 * parser out of stack, which leaves it unusable (parse.ts, ParserLostError), and each judge
 * thread lost that way cost a new one (red team, round 45): such a text is refused before it is
 * parsed. A statement of this estimate is far deeper than the engine's own limit on the parsed
 * tree (engine.ts, MAX_TREE_DEPTH), so nothing it would have judged is refused here.
 */
export const MAX_NESTING_ESTIMATE = 3000;

/** Texts shorter than this cannot reach MAX_NESTING_ESTIMATE (each unit takes a character). */
export const NESTING_CHECK_CHARS = 1500;

export function nestingEstimate(sql: string, tokens: readonly ScanToken[]): number {
  const runs: number[] = [0];
  let depth = 0;
  let max = 0;
  for (const t of tokens) {
    if (t.tokenName === 'SQL_COMMENT' || t.tokenName === 'C_COMMENT') continue;
    const text = sql.slice(t.start, t.end);
    const word = text.toUpperCase();
    if (text === '(' || text === '[' || word === 'CASE') {
      runs.push(0);
      depth += 2;
    } else if (text === ')' || text === ']' || word === 'END') {
      if (runs.length > 1) depth -= 2 + (runs.pop() ?? 0);
    } else if (ENDS_CHAIN.has(word)) {
      depth -= runs[runs.length - 1] ?? 0;
      runs[runs.length - 1] = 0;
    } else if (t.tokenName === 'TYPECAST' || CHAINS.has(word) || OPERATOR.test(text)) {
      runs[runs.length - 1] = (runs[runs.length - 1] ?? 0) + 1;
      depth++;
    }
    if (depth > max) max = depth;
  }
  return max;
}

/**
 * Keywords that nest their left side like an operator: NOT, COLLATE, AT TIME ZONE, a join of
 * joins, a set operation of set operations, OPERATOR(...).
 */
const CHAINS = new Set(['NOT', 'COLLATE', 'AT', 'JOIN', 'UNION', 'INTERSECT', 'EXCEPT', 'OPERATOR']);

/** Tokens after which an operator chain starts afresh: lists, statements, AND/OR, comparisons. */
const ENDS_CHAIN = new Set([',', ';', 'AND', 'OR', '=', '<', '>', '<=', '>=', '<>', '!=']);

/** An operator symbol (PostgreSQL's operator characters). */
const OPERATOR = /^[+\-*/<>=~!@#%^&|`?]+$/;
