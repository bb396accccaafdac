import { clone, names, stripLocations, type Node } from '../sql/ast.js';
import { parseSql } from '../sql/parse.js';
import type { EffectivePolicy } from '../policy/effective.js';
import { tenantGuard } from './parent-guards.js';
import { conjuncts, isSafe, ownColumns, type ParamUse } from './safe-conjuncts.js';
import { scopedReadOf } from './scoped.js';

type Body = Record<string, unknown>;

/**
 * A top-level SELECT whose only FROM item is a tenant-scoped table with no hidden or masked column
 * reads the table directly: `FROM public.orders AS orders WHERE <tenant filter> AND <conditions
 * that cannot raise> AND CASE WHEN <tenant filter> THEN <agent's WHERE> ELSE false END`, as a
 * write's WHERE is guarded (parent-guards.ts). The fenced subquery costs PostgreSQL a second
 * planning pass for every statement it plans; CASE keeps the agent's WHERE away from other
 * tenants' rows without it, and everything else in the SELECT only sees rows the WHERE let through.
 * Only at top level: a SELECT inside another could be pulled up, and the outer query's conditions
 * would then sit beside the filter, unguarded. HAVING is guarded too (havingGuard).
 */
export function inlineTenantFilter(
  sel: Body,
  tenant: string,
  policy: EffectivePolicy,
  usedOnce: ParamUse,
): void {
  const from = sel.fromClause as Node[] | undefined;
  if (from?.length !== 1) return;
  const rs = from[0]?.RangeSubselect as { subquery: Node; lateral?: boolean; alias?: Body } | undefined;
  // A column alias list renames the columns, the tenant column among them.
  if (!rs?.alias || rs.alias.colnames !== undefined || rs.lateral) return;
  const read = scopedReadOf(rs.subquery, tenant, policy);
  if (read?.t.scope !== 'tenant' || read.t.hidden.size > 0 || read.t.masks.size > 0) return;
  const refname = rs.alias.aliasname as string;
  // The conditions that cannot raise stand outside CASE, for the planner's indexes; the rest inside.
  const safe: Node[] = [];
  const rest: Node[] = [];
  for (const c of conjuncts(sel.whereClause)) {
    const u = unqualified(clone(c), refname);
    if (u !== undefined && isSafe(u, ownColumns(read.t), usedOnce)) safe.push(u);
    else rest.push(c);
  }
  const guard = rest.length <= 1 ? rest[0] : { BoolExpr: { boolop: 'AND_EXPR', args: rest } };
  from[0] = { RangeVar: { ...read.rv, alias: rs.alias } };
  sel.whereClause = tenantGuard(read.t, tenant, refname, guard, safe);
  if (sel.havingClause !== undefined) sel.havingClause = havingGuard(sel.havingClause as Node);
}

let countWhen: Node | undefined;
/** `pg_catalog.count(*) >= 0`: true for every group, and an aggregate. */
export function havingGuardWhen(): Node {
  countWhen ??= stripLocations(
    (
      parseSql('SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>=) 0').stmts[0]?.stmt.SelectStmt as {
        targetList: { ResTarget: { val: Node } }[];
      }
    ).targetList[0]!.ResTarget.val,
  ) as Node;
  return clone(countWhen);
}

/**
 * `CASE WHEN count(*) >= 0 THEN <agent's HAVING> ELSE false END`. PostgreSQL moves a HAVING
 * condition without aggregates into the scan's WHERE, beside the tenant filter and outside its
 * CASE, where one that costs nothing runs first, on every tenant's rows: its error told whether
 * globex had a paid order (red team, round 17). With an aggregate in it, the condition stays on
 * the groups, which hold the caller's rows only. count(*) is never negative, so the HAVING means
 * what it did (HAVING already makes the query grouped).
 */
export function havingGuard(having: Node): Node {
  return {
    CaseExpr: {
      args: [{ CaseWhen: { expr: havingGuardWhen(), result: having } }],
      defresult: { A_Const: { boolval: {} } },
    },
  };
}

/** The condition with `refname.col` written `col`; undefined if it names anything else. */
function unqualified(node: Node, refname: string): Node | undefined {
  let ok = true;
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      const ref = (v as { ColumnRef?: { fields: Node[] } }).ColumnRef;
      if (!ref) return Object.values(v).forEach(walk);
      const f = names(ref.fields);
      if (f.length === 2 && f[0] === refname) ref.fields = ref.fields.slice(1);
      else if (f.length !== 1) ok = false;
    }
  };
  walk(node);
  return ok ? node : undefined;
}
