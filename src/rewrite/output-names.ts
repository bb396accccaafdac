import { names, nodeType, type Node } from '../sql/ast.js';

/**
 * The column names a SELECT gives its result, as far as they can be told from its text: what a
 * subquery's or WITH query's alias has as columns. A name that cannot be told (`*`, an expression
 * the server names ?column?) is left out: callers treat an unknown column as not a column.
 * https://www.postgresql.org/docs/current/queries-select-lists.html#QUERIES-COLUMN-LABELS
 */
export function outputNames(select: Record<string, unknown> | undefined): string[] {
  if (!select) return [];
  if (select.op !== undefined && select.op !== 'SETOP_NONE')
    return outputNames(select.larg as Record<string, unknown> | undefined);
  const values = select.valuesLists as { List?: { items?: unknown[] } }[] | undefined;
  if (values?.length) return (values[0]?.List?.items ?? []).map((_, i) => `column${i + 1}`);
  const out: string[] = [];
  for (const t of (select.targetList as Node[] | undefined) ?? []) {
    const r = (t as { ResTarget?: { name?: string; val?: unknown } }).ResTarget;
    const name = r?.name ?? labelOf(r?.val);
    if (name !== undefined) out.push(name);
  }
  return out;
}

/** The label PostgreSQL gives an unnamed select-list item, for the kinds that are not ?column?. */
function labelOf(v: unknown): string | undefined {
  switch (nodeType(v)) {
    case 'ColumnRef': {
      const f = names((v as { ColumnRef: { fields?: Node[] } }).ColumnRef.fields);
      const last = f[f.length - 1];
      return last === '*' ? undefined : last;
    }
    case 'FuncCall':
      return names((v as { FuncCall: { funcname?: Node[] } }).FuncCall.funcname).at(-1);
    case 'TypeCast': {
      const c = (v as { TypeCast: { arg: unknown; typeName?: { names?: Node[] } } }).TypeCast;
      return labelOf(c.arg) ?? names(c.typeName?.names).at(-1);
    }
    case 'A_Indirection': {
      const last = names((v as { A_Indirection: { indirection?: Node[] } }).A_Indirection.indirection).at(-1);
      return last === '*' ? undefined : last;
    }
    default:
      return undefined;
  }
}

/** An alias's own column names (`AS x(a, b)`) over the ones its query gives, in order. */
export function aliasedNames(colnames: Node[] | undefined, given: readonly string[]): string[] {
  const own = names(colnames);
  return [...own, ...given.slice(own.length)];
}
