/**
 * The few libpg-query (PostgreSQL raw parse tree) shapes pgwarden touches, typed by hand because
 * @pgsql/types is not a dependency. A node is `{ TypeName: body }`; field names are Postgres's
 * (src/include/nodes/parsenodes.h).
 */
export type Node = Record<string, unknown>;

export interface RangeVar {
  catalogname?: string;
  schemaname?: string;
  relname: string;
  inh?: boolean;
  relpersistence?: string;
  alias?: Alias;
  location?: number;
}

export interface Alias {
  aliasname: string;
  colnames?: Node[];
}

export interface ResTarget {
  name?: string;
  indirection?: Node[];
  val?: Node;
  location?: number;
}

export interface WithClause {
  ctes?: Node[];
  recursive?: boolean;
}

export interface CommonTableExpr {
  ctename: string;
  ctequery?: Node;
  /** WITH x(a, b) AS (...): the columns' own names. */
  aliascolnames?: Node[];
  /** CYCLE ... SET mark TO value DEFAULT value USING path (PostgreSQL 14+). */
  cycle_clause?: Record<string, unknown>;
}

/** The single key of a node, e.g. "SelectStmt". */
export function nodeType(node: unknown): string | undefined {
  if (node === null || typeof node !== 'object' || Array.isArray(node)) return undefined;
  const keys = Object.keys(node);
  return keys.length === 1 ? keys[0] : undefined;
}

export function nodeBody<T = Record<string, unknown>>(node: Node): T {
  return Object.values(node)[0] as T;
}

export function str(sval: string): Node {
  return { String: { sval } };
}

/** Names in String nodes (function names, column refs, type names). */
export function names(list: readonly Node[] | undefined): string[] {
  return (list ?? []).map((n) => {
    const s = (n as { String?: { sval?: string } }).String;
    return s ? (s.sval ?? '') : '*';
  });
}

export function columnRef(...fields: string[]): Node {
  return { ColumnRef: { fields: fields.map(str) } };
}

export function stringConst(value: string): Node {
  return { A_Const: { sval: { sval: value } } };
}

export function nullConst(): Node {
  return { A_Const: { isnull: true } };
}

export function typeCast(arg: Node, typeName: Node): Node {
  return { TypeCast: { arg, typeName } };
}

export function and(first: Node, second: Node | undefined): Node {
  if (second === undefined) return first;
  return { BoolExpr: { boolop: 'AND_EXPR', args: [first, second] } };
}

/** `lexpr OPERATOR(pg_catalog.=) rexpr`: schema-qualified so no user operator can stand in. */
export function catalogEquals(lexpr: Node, rexpr: Node): Node {
  return { A_Expr: { kind: 'AEXPR_OP', name: [str('pg_catalog'), str('=')], lexpr, rexpr } };
}

/**
 * Where the parser found a node, every such key of the parse tree's types (@pgsql/types): named
 * one by one, so a key not yet seen counts as content and a tree comparison fails closed.
 */
const locationKeys: ReadonlySet<string> = new Set([
  'location',
  'name_location',
  'stmt_location',
  'list_start',
  'list_end',
  'rexpr_list_start',
  'rexpr_list_end',
]);

/** Drops parser locations so trees can be compared structurally. */
export function stripLocations(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(stripLocations);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) if (!locationKeys.has(k)) out[k] = stripLocations(v);
  return out;
}

/**
 * Whether two trees are the same but for parser locations, keys in any order. Walks both without
 * copying: the invariant check compares a guard per row of a multi-row INSERT.
 */
export function sameTree(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameTree(a[i], b[i])) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let keys = 0;
  for (const k in x) {
    if (locationKeys.has(k) || x[k] === undefined) continue;
    if (!sameTree(x[k], y[k])) return false;
    keys++;
  }
  for (const k in y) if (!locationKeys.has(k) && y[k] !== undefined) keys--;
  return keys === 0;
}

/** Where two trees first differ (as sameTree reads them), as a path: for a refusal's reason. */
export function firstDifference(a: unknown, b: unknown, path = '$'): string {
  if (sameTree(a, b)) return '';
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null)
    return `${path}: ${JSON.stringify(a)?.slice(0, 60)} vs ${JSON.stringify(b)?.slice(0, 60)}`;
  if (Array.isArray(a) && Array.isArray(b) && a.length !== b.length)
    return `${path}: ${JSON.stringify(a).slice(0, 200)} vs ${JSON.stringify(b).slice(0, 200)}`;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  for (const k of new Set([...Object.keys(x), ...Object.keys(y)]))
    if (!locationKeys.has(k) && !sameTree(x[k], y[k])) return firstDifference(x[k], y[k], `${path}.${k}`);
  return path;
}

/**
 * Whether a tree nests deeper than `max` levels of objects and arrays. Iterative, so any depth the
 * parser returns can be measured; stops at the first path deeper than `max`.
 */
export function deeperThan(tree: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[tree, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [unknown, number];
    if (typeof node !== 'object' || node === null) continue;
    if (depth >= max) return true;
    for (const v of Array.isArray(node) ? node : Object.values(node))
      if (typeof v === 'object' && v !== null) stack.push([v, depth + 1]);
  }
  return false;
}

export function clone<T>(node: T): T {
  return structuredClone(node);
}

/**
 * Whether an item of a positional list (a VALUES row, the target list of INSERT ... SELECT or of
 * any of its set-operation arms) can stand for several columns: `*`, `t.*`, `(x).*`,
 * `(ROW(...)).*`. PostgreSQL expands them in place, so the values after one no longer sit at the
 * positions of the columns they look like they fill.
 * https://www.postgresql.org/docs/current/rowtypes.html#ROWTYPES-USAGE
 */
export function expandsToColumns(item: unknown): boolean {
  const type = nodeType(item);
  const body =
    type === undefined ? undefined : ((item as Record<string, unknown>)[type] as Record<string, unknown>);
  if (!body) return false;
  if (type === 'ResTarget') return expandsToColumns(body.val);
  const last = (list: unknown): boolean =>
    Array.isArray(list) && list.length > 0 && nodeType(list[list.length - 1]) === 'A_Star';
  if (type === 'ColumnRef') return last(body.fields);
  if (type === 'A_Indirection') return last(body.indirection);
  return false;
}

/** Whether a SELECT's VALUES rows or target list, in any set-operation arm, hold an expanding item. */
export function hasPositionalExpansion(sel: Record<string, unknown> | undefined): boolean {
  if (!sel) return false;
  const rows = (sel.valuesLists as Node[] | undefined) ?? [];
  const items = [
    ...rows.flatMap((r) => ((r as { List?: { items?: unknown[] } }).List?.items ?? []) as unknown[]),
    ...(((sel.targetList as unknown[] | undefined) ?? []) as unknown[]),
  ];
  if (items.some(expandsToColumns)) return true;
  return (
    hasPositionalExpansion(sel.larg as Record<string, unknown> | undefined) ||
    hasPositionalExpansion(sel.rarg as Record<string, unknown> | undefined)
  );
}
