import { Deparser } from 'pgsql-deparser';
import type { Node } from './ast.js';

type DeparserContext = Parameters<Deparser['A_Indirection']>[1];
type Indirection = Parameters<Deparser['A_Indirection']>[0];

/** Arguments the library already parenthesizes before a subscript or field selection. */
const wrapped = new Set([
  'TypeCast',
  'SubLink',
  'A_Expr',
  'FuncCall',
  'A_Indirection',
  'ColumnRef',
  'RowExpr',
]);

/**
 * pgsql-deparser, with one repair. It prints an indirection's argument bare unless it is one of a
 * few node types, so `(ARRAY[1, 2])[1]` came out as `ARRAY[1, 2][1]`, which does not parse, and a
 * rewrite holding one was refused. PostgreSQL's grammar takes a subscript or a field only after a
 * column, a parameter, a subquery or a parenthesized expression: every other argument gets
 * parentheses here.
 */
class Printer extends Deparser {
  override A_Indirection(node: Indirection, context: DeparserContext): string {
    const printed = super.A_Indirection(node, context);
    const type = Object.keys((node.arg ?? {}) as object)[0];
    if (type === undefined || wrapped.has(type)) return printed;
    const arg = this.visit(node.arg as never, context);
    return printed.startsWith(arg) ? `(${arg})${printed.slice(arg.length)}` : printed;
  }
}

/** Turns statements back into one line of SQL (statements separated by "; "). */
export function deparseStatements(stmts: readonly Node[]): string {
  return stmts.map((s) => new Printer(s as never, { pretty: false }).deparseQuery()).join('; ');
}
