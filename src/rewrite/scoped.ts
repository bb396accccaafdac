import {
  catalogEquals,
  clone,
  columnRef,
  nullConst,
  sameTree,
  str,
  stringConst,
  typeCast,
  type Node,
  type RangeVar,
} from '../sql/ast.js';
import type { EffectivePolicy, TablePolicy } from '../policy/effective.js';

/** `schema.table.tenant_col OPERATOR(pg_catalog.=) '<tenant>'::<type>`, naming the row by `refname`. */
export function tenantFilter(t: TablePolicy, tenant: string, refname?: readonly string[]): Node {
  const col = t.tenantColumn;
  if (!col || !t.tenantTypeName) throw new Error(`${t.qname} has no tenant column`);
  const ref = refname ?? [t.schema, t.name];
  return catalogEquals(columnRef(...ref, col.name), tenantValue(t, tenant));
}

export function tenantValue(t: TablePolicy, tenant: string): Node {
  const typeName = (t.tenantTypeName as { TypeName: Node }).TypeName;
  return typeCast(stringConst(tenant), clone(typeName));
}

export function relation(t: TablePolicy, inh: boolean): Node {
  // The parser leaves `inh` out for ONLY (protobuf omits false), and the deparser reads it so.
  return {
    RangeVar: { schemaname: t.schema, relname: t.name, ...(inh ? { inh } : {}), relpersistence: 'p' },
  };
}

/**
 * The target list agents see for a table: every column in attnum order, so positions (alias column
 * lists, INSERT ... SELECT *) keep their meaning; a hidden column becomes a typed NULL and a masked
 * one its mask expression, so nothing above this point can read the raw value.
 */
export function visibleTargets(t: TablePolicy): Node[] {
  if (t.hidden.size === 0 && t.masks.size === 0)
    return [{ ResTarget: { val: { ColumnRef: { fields: [{ A_Star: {} }] } } } }];
  return t.columns.map((c) => {
    if (t.hidden.has(c.name))
      return { ResTarget: { name: c.name, val: typeCast(nullConst(), parseTypeNameCache(c.sqlType)) } };
    const mask = t.masks.get(c.name);
    if (mask) return { ResTarget: { name: c.name, val: clone(mask) } };
    return { ResTarget: { val: columnRef(c.name) } };
  });
}

let typeNameParser: ((sqlType: string) => Node) | undefined;
const typeNames = new Map<string, Node>();
/** Set by the engine at start; kept indirect so this module does not load the parser itself. */
export function setTypeNameParser(fn: (sqlType: string) => Node): void {
  typeNameParser = fn;
}
export function parseTypeNameCache(sqlType: string): Node {
  let n = typeNames.get(sqlType);
  if (!n) {
    if (!typeNameParser) throw new Error('type name parser not set');
    n = (typeNameParser(sqlType) as { TypeName: Node }).TypeName;
    typeNames.set(sqlType, n);
  }
  return clone(n);
}

/**
 * The scoped replacement of a base-relation reference:
 * `(SELECT <visible columns> FROM [ONLY] schema.table [TABLESAMPLE ...] WHERE <filter> OFFSET 0)`,
 * the filter being the tenant filter, or for a parent-scoped table the membership of its parent
 * key. OFFSET 0 fences the subquery: PostgreSQL neither pulls it up nor pushes the agent's
 * predicates into it, so they only ever see the tenant's rows. Without the fence the planner
 * orders a scan's conditions by estimated cost, and some expressions cost nothing (a jsonb
 * subscript, CASE, ARRAY[...]): an agent's condition that raises would run before the filter, on
 * another tenant's row. narrow.ts copies the conditions that cannot raise into the fence, so
 * indexes still serve them.
 */
export function scopedSelect(t: TablePolicy, tenant: string, opts: { inh: boolean; sample?: Node }): Node {
  const rel = relation(t, opts.inh);
  const from = opts.sample
    ? {
        RangeTableSample: {
          ...(opts.sample as { RangeTableSample: object }).RangeTableSample,
          relation: rel,
        },
      }
    : rel;
  const select: Record<string, unknown> = {
    targetList: visibleTargets(t),
    fromClause: [from],
    limitOption: 'LIMIT_OPTION_DEFAULT',
    op: 'SETOP_NONE',
  };
  if (t.scope === 'global') return { SelectStmt: select };
  select.whereClause = t.scope === 'tenant' ? tenantFilter(t, tenant) : parentFilter(t, tenant);
  select.limitOffset = { A_Const: { ival: {} } };
  select.limitOption = 'LIMIT_OPTION_COUNT';
  return { SelectStmt: select };
}

/** `schema.table.fk = ANY (SELECT parent.key FROM parent WHERE <parent tenant filter>)`. */
export function parentFilter(t: TablePolicy, tenant: string, refname?: readonly string[]): Node {
  const p = t.parent;
  if (!p) throw new Error(`${t.qname} has no parent`);
  return parentMembership(t, tenant, columnRef(...(refname ?? [t.schema, t.name]), p.foreignKey));
}

/** `<value> = ANY (SELECT parent.key FROM parent WHERE <parent tenant filter>)`. */
function parentMembership(t: TablePolicy, tenant: string, value: Node): Node {
  const p = t.parent;
  if (!p) throw new Error(`${t.qname} has no parent`);
  const sub = {
    SelectStmt: {
      targetList: [{ ResTarget: { val: columnRef(p.policy.schema, p.policy.name, p.references) } }],
      fromClause: [relation(p.policy, true)],
      whereClause: tenantFilter(p.policy, tenant),
      limitOption: 'LIMIT_OPTION_DEFAULT',
      op: 'SETOP_NONE',
    },
  };
  return {
    SubLink: {
      subLinkType: 'ANY_SUBLINK',
      testexpr: value,
      operName: [str('pg_catalog'), str('=')],
      subselect: sub,
    },
  };
}

/**
 * The listed table a subquery is pgwarden's scoped read of, exactly as scopedSelect built it for
 * the caller's tenant (before anything was added to its WHERE), with its FROM item; else undefined.
 */
export function scopedReadOf(
  subquery: Node,
  tenant: string,
  policy: EffectivePolicy,
): { t: TablePolicy; rv: RangeVar } | undefined {
  const sub = subquery.SelectStmt as Record<string, unknown> | undefined;
  const from = sub?.fromClause as Node[] | undefined;
  const rv = from?.length === 1 ? (from[0]?.RangeVar as RangeVar | undefined) : undefined;
  if (!sub || !rv?.schemaname) return undefined;
  const t = policy.tables.get(`${rv.schemaname}.${rv.relname}`);
  if (!t || !sameTree(sub.targetList, visibleTargets(t))) return undefined;
  const scoped = scopedSelect(t, tenant, { inh: true }).SelectStmt as Record<string, unknown>;
  return sameTree(sub.whereClause, scoped.whereClause) && sameTree(sub.limitOffset, scoped.limitOffset)
    ? { t, rv }
    : undefined;
}
