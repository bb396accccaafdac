import { and, type Node } from '../sql/ast.js';
import type { EffectivePolicy } from '../policy/effective.js';
import { scopedReadOf, tenantFilter } from './scoped.js';

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
  const read = scopedReadOf(rs.subquery, tenant, policy);
  if (read?.t.scope !== 'tenant' || read.t.hidden.size > 0 || read.t.masks.size > 0) return;
  const refname = rs.alias.aliasname as string;
  from[0] = { RangeVar: { ...read.rv, alias: rs.alias } };
  sel.whereClause = and(tenantFilter(read.t, tenant, [refname]), sel.whereClause as Node | undefined);
}
