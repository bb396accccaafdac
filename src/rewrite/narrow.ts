import { clone, names, nodeType, type Node } from '../sql/ast.js';
import type { EffectivePolicy, TablePolicy } from '../policy/effective.js';
import { conjuncts, isSafe, ownColumns, rejectsNull, type ParamUse } from './safe-conjuncts.js';
import { scopedReadOf } from './scoped.js';

type Body = Record<string, unknown>;

/**
 * A scoped table is read through a fenced subquery (OFFSET 0), so the agent's predicates stay above
 * its tenant or parent filter; but then `WHERE id = 42` cannot use the table's own index and every
 * row of the tenant is walked. This copies the WHERE conditions that cannot raise
 * (safe-conjuncts.ts) and reject NULL, and that name only that table, into its subquery after the
 * filter. The WHERE keeps them too, so the result is the same: a strict condition on the nullable
 * side of an outer join only removes rows that the WHERE would have rejected.
 */
export function narrowScoped(sel: Body, tenant: string, policy: EffectivePolicy, usedOnce: ParamUse): void {
  const from = sel.fromClause as Node[] | undefined;
  if (sel.whereClause === undefined || !from) return;
  const fenced = new Map<string, { t: TablePolicy; sub: Body }>();
  const seen = new Map<string, number>();
  let items = 0;
  const visit = (item: Node): void => {
    const kind = nodeType(item);
    if (kind === 'JoinExpr') {
      const j = item.JoinExpr as { larg: Node; rarg: Node; alias?: unknown };
      // Names inside an aliased join are hidden behind the join's alias.
      if (j.alias === undefined) {
        visit(j.larg);
        visit(j.rarg);
      } else items += 2;
      return;
    }
    items++;
    const s = item.RangeSubselect as { subquery: Node; alias?: { aliasname: string; colnames?: Node[] } };
    if (kind !== 'RangeSubselect' || !s.alias) return;
    seen.set(s.alias.aliasname, (seen.get(s.alias.aliasname) ?? 0) + 1);
    const read = s.alias.colnames ? undefined : scopedReadOf(s.subquery, tenant, policy);
    const t = read?.t.scope === 'parent' || read?.t.scope === 'tenant' ? read.t : undefined;
    if (t) fenced.set(s.alias.aliasname, { t, sub: s.subquery.SelectStmt as Body });
  };
  from.forEach(visit);
  const copies = new Map<string, Node[]>();
  for (const c of conjuncts(sel.whereClause)) {
    const refs = columnRefs(c);
    const alias =
      refs.length > 0 && refs.every((f) => f.length === 2 && f[0] === refs[0]?.[0])
        ? refs[0]?.[0]
        : refs.length > 0 && refs.every((f) => f.length === 1) && items === 1 && fenced.size === 1
          ? [...fenced.keys()][0]
          : undefined;
    const target = alias === undefined || seen.get(alias) !== 1 ? undefined : fenced.get(alias);
    if (alias === undefined || !target) continue;
    const unqualified = unqualify(clone(c));
    if (!isSafe(unqualified, ownColumns(target.t), usedOnce) || !rejectsNull(unqualified)) continue;
    copies.set(alias, [...(copies.get(alias) ?? []), unqualified]);
  }
  for (const [alias, list] of copies) {
    const target = fenced.get(alias);
    if (!target) continue;
    target.sub.whereClause = {
      BoolExpr: { boolop: 'AND_EXPR', args: [target.sub.whereClause as Node, ...list] },
    };
  }
}

function columnRefs(node: unknown, out: string[][] = []): string[][] {
  if (Array.isArray(node)) node.forEach((n) => columnRefs(n, out));
  else if (node !== null && typeof node === 'object') {
    const ref = (node as { ColumnRef?: { fields: Node[] } }).ColumnRef;
    if (ref) out.push(names(ref.fields));
    else Object.values(node).forEach((v) => columnRefs(v, out));
  }
  return out;
}

/** The same condition with its column references reduced to the column name. */
function unqualify(node: Node): Node {
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      const ref = (v as { ColumnRef?: { fields: Node[] } }).ColumnRef;
      if (ref) ref.fields = ref.fields.slice(-1);
      else Object.values(v).forEach(walk);
    }
  };
  walk(node);
  return node;
}
