import { and, sameTree, type Node, type RangeVar } from '../sql/ast.js';
import type { EffectivePolicy, TablePolicy } from '../policy/effective.js';
import { tenantFilter, visibleTargets } from './scoped.js';

type Body = Record<string, unknown>;

/**
 * A SELECT whose only FROM item is a tenant-scoped table with no hidden or masked column reads the
 * table directly, its tenant filter first in the WHERE: `FROM public.orders AS orders WHERE
 * orders.org_id OPERATOR(pg_catalog.=) 'acme'::text AND <agent's WHERE>`. PostgreSQL would pull the
 * scoped subquery up into exactly these quals (the filter first, then ordered by cost), but it
 * parses, expands and pulls up the subquery first, for every statement it plans. With one FROM
 * item, filtering in WHERE and in FROM are the same;
 * with joins the subquery stays (an outer join's nullable side must be filtered before the join).
 */
export function inlineTenantFilter(sel: Body, tenant: string, policy: EffectivePolicy): void {
  const from = sel.fromClause as Node[] | undefined;
  if (from?.length !== 1) return;
  const rs = from[0]?.RangeSubselect as { subquery: Node; lateral?: boolean; alias?: Body } | undefined;
  // A column alias list renames the columns, the tenant column among them.
  if (!rs?.alias || rs.alias.colnames !== undefined || rs.lateral) return;
  const sub = rs.subquery.SelectStmt as Body | undefined;
  const rv = (sub?.fromClause as Node[] | undefined)?.[0]?.RangeVar as RangeVar | undefined;
  const t = sub && rv ? scopedTenantRead(sub, rv, tenant, policy) : undefined;
  if (!t || !rv) return;
  const refname = rs.alias.aliasname as string;
  from[0] = { RangeVar: { ...rv, alias: rs.alias } };
  sel.whereClause = and(tenantFilter(t, tenant, [refname]), sel.whereClause as Node | undefined);
}

/** The table a subquery is pgwarden's scoped read of, if it is a tenant table with nothing to hide. */
function scopedTenantRead(
  sub: Body,
  rv: RangeVar,
  tenant: string,
  policy: EffectivePolicy,
): TablePolicy | undefined {
  if ((sub.fromClause as Node[]).length !== 1 || !rv.schemaname || sub.limitOffset) return undefined;
  const t = policy.tables.get(`${rv.schemaname}.${rv.relname}`);
  if (t?.scope !== 'tenant' || t.hidden.size > 0 || t.masks.size > 0) return undefined;
  if (!sameTree(sub.targetList, visibleTargets(t)) || !sameTree(sub.whereClause, tenantFilter(t, tenant)))
    return undefined;
  return t;
}
