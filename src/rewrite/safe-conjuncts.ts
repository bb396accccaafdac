import { names, nodeType, type Node, type RangeVar } from '../sql/ast.js';
import type { Catalog } from '../policy/catalog.js';
import { needsSubquery, type EffectivePolicy, type TablePolicy } from '../policy/effective.js';
import type { Scope } from './context.js';
import { resolveRelation } from './resolve.js';
import { scopedReadOf } from './scoped.js';

type Body = Record<string, unknown>;

/**
 * Conjuncts of an agent's WHERE that may run on any row, another tenant's included, because they
 * cannot raise an error: a column compared with a constant, a parameter or a column of the same
 * type, IN over constants, IS [NOT] NULL. A write on a parent-scoped table repeats them outside
 * its CASE guard so the planner can use them (an index on the child's key, a join condition);
 * without them an UPDATE ... FROM becomes a nested loop over every pair of rows.
 *
 * What could raise on a row's value is a cast of the column, which PostgreSQL adds when the other
 * side has another type (numeric to float8 overflows, date to timestamp leaves its range). So two
 * columns must have the same type (or both be integers, which compare without casts), and a
 * parameter, whose type the client may declare, is accepted only against columns whose implicit
 * casts cannot fail, and that stands nowhere else (ParamUse). A constant is typed at parse time,
 * where an error depends on no row.
 */
export function safeConjuncts(where: unknown, typeOf: ColumnTypes, usedOnce: ParamUse): Node[] {
  return conjuncts(where).filter((c) => isSafe(c, typeOf, usedOnce));
}

/**
 * Whether parameter $n stands only once in the agent's statement. A parameter of unspecified type
 * takes the type of its first use: `(SELECT $1::oid) x, order_items i WHERE i.order_id = $1` made
 * it an oid, and the copy of `order_id = $1` beside the tenant filter cast the bigint column to
 * oid, which raised on another tenant's large ids (red team, round 19). Used once, beside the
 * column, it takes the column's type. (Declared types are a fixed list whose casts cannot fail:
 * session/param-types.ts.) The counts come from the agent's statement, before pgwarden's copies;
 * the invariant checks its output against the same counts.
 */
export type ParamUse = (n: number) => boolean;

/** The numbers of the parameters that stand exactly once in `stmts`. */
export function paramsUsedOnce(stmts: unknown): ParamUse {
  const uses = new Map<number, number>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      const p = (v as { ParamRef?: { number?: number } }).ParamRef;
      if (p) uses.set(p.number ?? 0, (uses.get(p.number ?? 0) ?? 0) + 1);
      else Object.values(v).forEach(walk);
    }
  };
  walk(stmts);
  return (n) => uses.get(n) === 1;
}

/** The type name of a column reference (`t.col`, or `col` when one relation is in scope), if known. */
export type ColumnTypes = (fields: readonly string[]) => string | undefined;

const comparisons = new Set(['=', '<>', '<', '>', '<=', '>=']);
const integers = new Set(['int2', 'int4', 'int8']);
/** Types whose implicit casts (to wider integers, numeric, float, text) never fail. */
const castSafe = new Set([...integers, 'text', 'varchar', 'bpchar', 'name', 'uuid', 'bool']);

export function conjuncts(where: unknown): Node[] {
  const b = (where as { BoolExpr?: { boolop: string; args: Node[] } } | undefined)?.BoolExpr;
  if (b?.boolop === 'AND_EXPR') return b.args.flatMap(conjuncts);
  return where === undefined || where === null ? [] : [where as Node];
}

export function isSafe(node: Node, typeOf: ColumnTypes, usedOnce: ParamUse): boolean {
  const kind = nodeType(node);
  if (kind === 'NullTest') return columnType((node.NullTest as { arg: Node }).arg, typeOf) !== undefined;
  if (kind !== 'A_Expr') return false;
  const e = node.A_Expr as { kind: string; name: Node[]; lexpr: Node; rexpr: Node };
  const op = names(e.name);
  const opName = op.length === 2 && op[0] === 'pg_catalog' ? op[1] : op.length === 1 ? op[0] : undefined;
  const left = columnType(e.lexpr, typeOf);
  if (left === undefined) return false;
  if (e.kind === 'AEXPR_IN' && opName === '=') {
    const items = (e.rexpr as { List?: { items: Node[] } }).List?.items;
    return items !== undefined && items.every((v) => isValue(v, left, usedOnce));
  }
  if (e.kind !== 'AEXPR_OP' || opName === undefined || !comparisons.has(opName)) return false;
  const right = columnType(e.rexpr, typeOf);
  if (right !== undefined) return right === left || (integers.has(left) && integers.has(right));
  return isValue(e.rexpr, left, usedOnce);
}

function columnType(n: Node, typeOf: ColumnTypes): string | undefined {
  if (nodeType(n) !== 'ColumnRef') return undefined;
  const fields = (n.ColumnRef as { fields: Node[] }).fields;
  if (fields.some((f) => nodeType(f) !== 'String')) return undefined;
  return typeOf(names(fields));
}

function isValue(n: Node, columnType: string, usedOnce: ParamUse): boolean {
  const kind = nodeType(n);
  if (kind === 'A_Const') return (n.A_Const as { isnull?: boolean }).isnull !== true;
  return (
    kind === 'ParamRef' &&
    castSafe.has(columnType) &&
    usedOnce((n.ParamRef as { number?: number }).number ?? 0)
  );
}

/**
 * Whether a safe conjunct is false or null whenever a column it names is null (comparisons and IN
 * are strict; IS NOT NULL too; IS NULL is not). Only such a condition may also filter the nullable
 * side of an outer join: the rows it removes there could only have produced rows it rejects anyway.
 */
export function rejectsNull(node: Node): boolean {
  const t = (node.NullTest as { nulltesttype?: string } | undefined)?.nulltesttype;
  return t === undefined ? nodeType(node) === 'A_Expr' : t === 'IS_NOT_NULL';
}

/** Column types of one table, for unqualified references inside its own scoped subquery. */
/**
 * The type of a column read as stored: not masked (the mask is an expression), not hidden, not
 * computed when read (a view's, a virtual generated column: red team, round 56).
 */
function plainColumnType(t: TablePolicy, col: string): string | undefined {
  if (t.masks.has(col) || t.hidden.has(col) || t.computed.has(col)) return undefined;
  return t.columns.find((c) => c.name === col)?.type;
}

export function ownColumns(t: TablePolicy): ColumnTypes {
  return (fields) => {
    const [col] = fields;
    return fields.length === 1 && col !== undefined ? plainColumnType(t, col) : undefined;
  };
}

/**
 * The relations a write's own WHERE can name, by reference name: the target and the FROM / USING
 * items that are listed tables (as written, or as pgwarden's scoped subquery of one). A masked
 * column's type is its mask's, so it is left out; a name given twice is ambiguous and dropped.
 */
export function writeRelations(
  body: Body,
  target: TablePolicy,
  tenant: string,
  policy: EffectivePolicy,
  catalog: Catalog,
  scope: Scope | undefined,
): ColumnTypes {
  const byName = new Map<string, TablePolicy | undefined>();
  const add = (name: string, t: TablePolicy | undefined): void => {
    byName.set(name, byName.has(name) ? undefined : t);
  };
  const rv = body.relation as RangeVar;
  add(rv.alias?.aliasname ?? rv.relname, target);
  const visit = (item: Node): void => {
    const kind = nodeType(item);
    if (kind === 'RangeVar') {
      const r = item.RangeVar as RangeVar;
      const resolved = resolveRelation(r, catalog, scope);
      const t = resolved.kind === 'relation' ? policy.tables.get(resolved.qname) : undefined;
      // A column alias list renames its columns (`products AS p(price)`: p.price is products.id);
      // they are not typed through it (red team, round 20).
      const renamed = r.alias?.colnames !== undefined;
      add(r.alias?.aliasname ?? r.relname, t && !needsSubquery(t) && !renamed ? t : undefined);
    } else if (kind === 'RangeSubselect') {
      const s = item.RangeSubselect as { subquery: Node; alias?: { aliasname: string; colnames?: Node[] } };
      if (!s.alias) return;
      add(s.alias.aliasname, s.alias.colnames ? undefined : scopedReadOf(s.subquery, tenant, policy)?.t);
    } else if (kind === 'JoinExpr') {
      const j = item.JoinExpr as { larg: Node; rarg: Node; alias?: unknown };
      // A join alias hides the names inside it; none of them may be typed through it.
      if (j.alias !== undefined) return;
      visit(j.larg);
      visit(j.rarg);
    }
  };
  for (const item of [
    ...((body.fromClause as Node[] | undefined) ?? []),
    ...((body.usingClause as Node[] | undefined) ?? []),
    ...(body.sourceRelation ? [body.sourceRelation as Node] : []),
  ])
    visit(item);
  return (fields) => {
    const [a, b] = fields;
    const t =
      fields.length === 2 && a !== undefined
        ? byName.get(a)
        : fields.length === 1 && byName.size === 1
          ? target
          : undefined;
    const col = fields.length === 2 ? b : a;
    return t && col !== undefined ? plainColumnType(t, col) : undefined;
  };
}
