import { deparseSync } from 'pgsql-deparser';
import type { Node } from './ast.js';

/** Turns statements back into one line of SQL (statements separated by "; "). */
export function deparseStatements(stmts: readonly Node[]): string {
  return stmts.map((s) => deparseSync(s as never, { pretty: false })).join('; ');
}
