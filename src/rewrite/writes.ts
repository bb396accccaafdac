import {
  clone,
  columnRef,
  expandsToColumns,
  hasPositionalExpansion,
  names,
  nodeType,
  nullConst,
  str,
  typeCast,
  type Node,
  type RangeVar,
  type WithClause,
} from '../sql/ast.js';
import type { TablePolicy } from '../policy/effective.js';
import type { ParamCheck } from '../policy/verdict.js';
import { Denial, type RangeVariable, type RewriteContext, type Scope, type WriteTarget } from './context.js';
import {
  checkCollation,
  checkSchemaOf,
  exactLiteralValue,
  literalValue,
  tenantKeepingCasts,
  visitValue,
} from './expr.js';
import { resolveRelation } from './resolve.js';
import { conjuncts, safeConjuncts, writeRelations } from './safe-conjuncts.js';
import {
  constantKey,
  parentConflictFilter,
  parentKeyGuard,
  parentKeyMessage,
  parentKeyRef,
  parentKeysCte,
  parentWriteFilter,
  tenantGuard,
} from './parent-guards.js';
import { tenantValue } from './scoped.js';
import { levelScopes, notListed, processWith, rewriteFromItem, rewriteSelect, tableFor } from './select.js';
import type { AccessKind } from '../policy/rules-schema.js';

type Body = Record<string, unknown>;

/** Rewrites INSERT / UPDATE / DELETE / MERGE (top level or in WITH) so they stay in the tenant. */
export function rewriteWrite(node: Node, ctx: RewriteContext, outer: Scope | undefined): void {
  const kind = nodeType(node);
  const body = node[kind ?? ''] as Body;
  if (ctx.writeTarget) throw new Denial('nested data-modifying statements are not supported', 'nested_write');
  const scope = processWith(body.withClause as WithClause | undefined, ctx, outer);
  switch (kind) {
    case 'InsertStmt':
      return rewriteInsert(body, ctx, scope);
    case 'UpdateStmt':
      return rewriteUpdate(body, ctx, scope);
    case 'DeleteStmt':
      return rewriteDelete(body, ctx, scope);
    case 'MergeStmt':
      return rewriteMerge(body, ctx, scope);
    default:
      throw new Denial(`${kind} is not allowed`, 'statement_not_allowed');
  }
}

function target(
  body: Body,
  ctx: RewriteContext,
  needs: AccessKind[],
): { t: TablePolicy; rv: RangeVar; refname: string } {
  const rv = body.relation as RangeVar;
  // A write target is never a CTE (parserOpenTable), so no scope is passed.
  const r = resolveRelation(rv, ctx.catalog, undefined);
  if (r.kind !== 'relation') throw notListed(r.kind === 'missing' ? r.written : rv.relname, ctx);
  const t = tableFor(r.qname, rv.schemaname ? r.qname : rv.relname, ctx);
  for (const a of needs)
    if (!t.access.has(a))
      throw new Denial(
        `${a} on ${t.qname} is not allowed: the rules grant ${[...t.access].join(', ')}`,
        'access_denied',
        { ruleId: `tables.${t.qname}` },
      );
  ctx.touch(t);
  const refname = rv.alias?.aliasname ?? rv.relname;
  ctx.refs.set(refname, t);
  // The target is read directly, so its system columns are there; old / new / excluded name its rows.
  if (t.scope !== 'global') for (const n of [refname, 'old', 'new', 'excluded']) ctx.scopedRefnames.add(n);
  ctx.reasons.add('write_scoped');
  return { t, rv, refname };
}

function enterTarget(ctx: RewriteContext, t: TablePolicy, refnames: string[]): WriteTarget {
  const w: WriteTarget = { policy: t, refnames: new Set(refnames) };
  ctx.writeTarget = w;
  return w;
}

/**
 * The tenant filter on the target row, first in the WHERE so it runs before any agent predicate
 * (for a parent-scoped table, the parent filter guarding the agent's predicate).
 */
function filterFirst(
  t: TablePolicy,
  ctx: RewriteContext,
  refname: string,
  where: unknown,
  safe: Node[] = [],
): Node | undefined {
  if (t.scope === 'global') return where as Node | undefined;
  // The conditions that cannot raise stand outside the guard, where the planner can use them.
  const rest = conjuncts(where).filter((c) => !safe.includes(c));
  const guard = rest.length === 0 ? undefined : rest.length === 1 ? rest[0] : andAll(rest);
  if (t.scope === 'parent') return parentWriteFilter(t, ctx.tenant, refname, guard, safe);
  return tenantGuard(t, ctx.tenant, refname, guard, safe);
}

function andAll(args: Node[]): Node {
  return { BoolExpr: { boolop: 'AND_EXPR', args } };
}

/** The agent's conditions that cannot raise on any row (safe-conjuncts.ts). */
function hoistable(
  body: Body,
  condition: unknown,
  t: TablePolicy,
  ctx: RewriteContext,
  scope: Scope | undefined,
): Node[] {
  if (t.scope === 'global') return [];
  return safeConjuncts(
    condition,
    writeRelations(body, t, ctx.tenant, ctx.policy, ctx.catalog, scope),
    ctx.paramsUsedOnce,
  );
}

/** An UPDATE may not move a row of a parent-scoped table to another parent (of any tenant). */
function checkParentKeyUnassigned(t: TablePolicy, column: string): void {
  if (t.scope === 'parent' && column === t.parent?.foreignKey)
    throw new Denial(
      `${t.qname}.${column} ties each row to your tenant through ${t.parent.policy.qname} and cannot be updated; delete the row and insert it under the other ${t.parent.policy.name} row`,
      'parent_key_assigned',
      { ruleId: `tables.${t.qname}` },
    );
}

/**
 * Each value written into a parent-scoped table's foreign key is wrapped in a check that it names
 * a parent row of the caller's tenant. A row without one would belong to no tenant (and DEFAULT
 * cannot be checked), so the key must be given.
 */
/**
 * A multi-row VALUES whose keys are all literals or parameters, in an INSERT with no WITH of its
 * own, has its keys checked once for the statement (parentKeysCte) instead of row by row.
 */
function sharedKeyCheck(body: Body, sel: Body | undefined, keys: readonly unknown[]): boolean {
  return body.withClause === undefined && sel?.withClause === undefined && keys.every(constantKey);
}

function guardParentKeys(values: unknown[], t: TablePolicy, ctx: RewriteContext): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as Node | undefined;
    if (v === undefined || nodeType(v) === 'SetToDefault')
      throw new Denial(
        `${t.qname}.${t.parent?.foreignKey ?? ''} must be given: a row of ${t.parent?.policy.qname ?? ''} in your tenant`,
        'parent_key_missing',
        { ruleId: `tables.${t.qname}` },
      );
    values[i] = parentKeyGuard(t, ctx.tenant, v);
  }
  ctx.reasons.add('parent_key_checked');
  ctx.keyRefusals.add(parentKeyMessage(t, ctx.tenant, false));
}

const paramTypes: Record<string, ParamCheck['type']> = {
  text: 'text',
  varchar: 'text',
  int4: 'int4',
  int8: 'int8',
  uuid: 'uuid',
};

/**
 * A value written into the tenant column must be the caller's tenant: a literal is checked now,
 * a parameter ($n) when the proxy sees its Bind value. Anything else could be another tenant.
 */
function checkTenantValue(value: unknown, t: TablePolicy, ctx: RewriteContext): void {
  const col = t.tenantColumn;
  if (!col) return;
  const keeping = tenantKeepingCasts(col.type);
  const lit = exactLiteralValue(value, keeping);
  if (lit === undefined && literalValue(value) !== undefined)
    throw new Denial(
      `${t.qname}.${col.name} may only be set to your tenant '${ctx.tenant}' as a literal ('${ctx.tenant}'), bare${keeping.size ? ` or cast to ${[...keeping].join(' or ')} without a length` : ''} (a cast can change the value written, and so can a decimal number: .5 is written as 0.5); leave it out and pgwarden fills it in`,
      'tenant_value_unchecked',
      { ruleId: `tables.${t.qname}` },
    );
  if (lit !== undefined) {
    ctx.literalSensitive = true;
    if (lit !== ctx.tenant)
      throw new Denial(
        `${t.qname}.${col.name} must be your tenant '${ctx.tenant}', not '${lit}'; you may also leave ${col.name} out and pgwarden fills it in`,
        'cross_tenant_write',
        { flags: ['cross_tenant_attempt'], ruleId: `tables.${t.qname}` },
      );
    return;
  }
  const ref =
    nodeType(value) === 'ParamRef'
      ? (value as { ParamRef: { number: number; location?: number } }).ParamRef
      : undefined;
  const param = ref?.number;
  const type = paramTypes[col.type];
  if (param !== undefined && type !== undefined) {
    // Nodes pgwarden made carry no location: a check of one never vouches for the agent's $n.
    if (ref?.location !== undefined) ctx.checkedParamLocations.add(ref.location);
    ctx.paramChecks.push({
      index: param,
      equals: ctx.tenant,
      type,
      message: `${t.qname}.${col.name} must be your tenant '${ctx.tenant}'`,
    });
    ctx.reasons.add('tenant_param_checked');
    return;
  }
  throw new Denial(
    `${t.qname}.${col.name} may only be set to your tenant '${ctx.tenant}' as a literal or parameter; leave it out and pgwarden fills it in`,
    'tenant_value_unchecked',
    { ruleId: `tables.${t.qname}` },
  );
}

/** SET assignments: no hidden columns, and the tenant column only to the caller's tenant. */
function checkAssignments(
  list: Node[] | undefined,
  t: TablePolicy,
  ctx: RewriteContext,
  scope: Scope | undefined,
): void {
  for (const n of list ?? []) {
    const rt = (n as { ResTarget: { name: string; val: Node; indirection?: Node[] } }).ResTarget;
    const col = t.columns.find((c) => c.name === rt.name);
    if (!col) throw new Denial(`${rt.name} is not a column of ${t.qname}`, 'not_a_column');
    checkParentKeyUnassigned(t, col.name);
    if (t.hidden.has(col.name))
      throw new Denial(
        `column ${t.qname}.${col.name} is not available to agents; usable columns: ${ctx.usableColumns(t)}`,
        'column_denied',
        {
          ruleId: `tables.${t.qname}.columns`,
        },
      );
    if (col.name === t.tenantColumn?.name) {
      if (
        rt.indirection?.length ||
        nodeType(rt.val) === 'MultiAssignRef' ||
        nodeType(rt.val) === 'SetToDefault'
      )
        throw new Denial(
          `${t.qname}.${col.name} may only be assigned your tenant '${ctx.tenant}' directly`,
          'tenant_value_unchecked',
        );
      checkTenantValue(rt.val, t, ctx);
    }
    ctx.columns.add(`${t.qname}.${col.name}`);
    visitValue(rt.val, ctx, scope);
    visitValue(rt.indirection, ctx, scope);
  }
}

/**
 * RETURNING reads the raw target row: `*` is spelled out with hidden and masked columns as typed
 * NULLs, and anything naming a hidden or masked column is refused (by the column check).
 * PostgreSQL 18 also names the row `old` / `new` there.
 */
function rewriteReturning(
  body: Body,
  t: TablePolicy,
  refname: string,
  ctx: RewriteContext,
  scope: Scope | undefined,
  hasFrom: boolean,
): void {
  const rc = body.returningClause as { exprs?: Node[]; options?: Node[] } | undefined;
  if (!rc?.exprs) return;
  if (rc.options?.length)
    throw new Denial('RETURNING WITH (OLD AS ..., NEW AS ...) is not supported', 'unsupported_syntax');
  const restricted = t.hidden.size > 0 || t.masks.size > 0;
  const prev = ctx.writeTarget;
  ctx.writeTarget = { policy: t, refnames: new Set([refname, 'old', 'new']) };
  const out: Node[] = [];
  for (const n of rc.exprs) {
    const val = (n as { ResTarget: { val: Node } }).ResTarget.val;
    const f =
      nodeType(val) === 'ColumnRef' ? names((val as { ColumnRef: { fields: Node[] } }).ColumnRef.fields) : [];
    const star = f.length === 1 && f[0] === '*';
    const qualifiedStar = f.length === 2 && f[1] === '*' && ctx.writeTarget.refnames.has(f[0] ?? '');
    if (restricted && (star || qualifiedStar)) {
      if (star && hasFrom)
        throw new Denial(
          `RETURNING * would include hidden columns of ${t.qname}; list the columns: ${ctx.usableColumns(t)}`,
          'star_in_write',
        );
      const qual = qualifiedStar ? (f[0] ?? refname) : refname;
      for (const c of t.columns) {
        if (t.hidden.has(c.name) || t.masks.has(c.name))
          out.push({
            ResTarget: {
              name: c.name,
              val: typeCast(nullConst(), { names: [str('pg_catalog'), str('text')], typemod: -1 }),
            },
          });
        else out.push({ ResTarget: { name: c.name, val: columnRef(qual, c.name) } });
      }
      continue;
    }
    visitValue(n, ctx, scope);
    out.push(n);
  }
  rc.exprs = out;
  ctx.writeTarget = prev;
}

/** A write's target as a range variable: its whole row is a row, its columns the table's. */
function targetVariable(refname: string, t: TablePolicy): readonly [string, RangeVariable] {
  return [refname, { row: true, columns: new Set(t.columns.map((c) => c.name)) }];
}

function rewriteUpdate(body: Body, ctx: RewriteContext, scope: Scope | undefined): void {
  const { t, refname } = target(body, ctx, ['update']);
  const from = body.fromClause as Node[] | undefined;
  const { fromScope, inner } = levelScopes(from, ctx, scope, targetVariable(refname, t));
  if (from) body.fromClause = from.map((i) => rewriteFromItem(i, ctx, fromScope));
  enterTarget(ctx, t, [refname]);
  checkAssignments(body.targetList as Node[], t, ctx, inner);
  visitValue(body.whereClause, ctx, inner);
  body.whereClause = filterFirst(
    t,
    ctx,
    refname,
    body.whereClause,
    hoistable(body, body.whereClause, t, ctx, inner),
  );
  rewriteReturning(body, t, refname, ctx, inner, (from?.length ?? 0) > 0);
  ctx.writeTarget = undefined;
}

function rewriteDelete(body: Body, ctx: RewriteContext, scope: Scope | undefined): void {
  const { t, refname } = target(body, ctx, ['delete']);
  const using = body.usingClause as Node[] | undefined;
  const { fromScope, inner } = levelScopes(using, ctx, scope, targetVariable(refname, t));
  if (using) body.usingClause = using.map((i) => rewriteFromItem(i, ctx, fromScope));
  enterTarget(ctx, t, [refname]);
  visitValue(body.whereClause, ctx, inner);
  body.whereClause = filterFirst(
    t,
    ctx,
    refname,
    body.whereClause,
    hoistable(body, body.whereClause, t, ctx, inner),
  );
  rewriteReturning(body, t, refname, ctx, inner, (using?.length ?? 0) > 0);
  ctx.writeTarget = undefined;
}

/**
 * Values are matched to columns by position, and pgwarden checks the tenant column and the parent
 * key at their positions: an item that expands into several columns would move every value after
 * it, so the checked position would hold another value than the one stored.
 */
function rowExpansion(): Denial {
  return new Denial(
    'a value that expands into several columns ((x).*, t.*) is not allowed in INSERT or MERGE ... INSERT values: list each field, as (x).a, (x).b',
    'insert_row_expansion',
  );
}

/** The explicit column list of an INSERT (positional inserts fill columns in attnum order). */
function insertColumns(body: Body, t: TablePolicy, width: number): Node[] {
  const cols = body.cols as Node[] | undefined;
  // `meta[<expr>]` or `col.field` in the column list: the server runs those expressions, which no
  // check here reads (red team, round 53: a subscript ran ts_stat, any SQL as pgwarden's user).
  for (const c of cols ?? [])
    if ((c as { ResTarget?: { indirection?: unknown[] } }).ResTarget?.indirection?.length)
      throw new Denial(
        'a subscript or field in an INSERT column list is not allowed: insert the whole value, or set the element with UPDATE',
        'unsupported_syntax',
      );
  if (cols?.length) return cols;
  if (width > t.columns.length)
    throw new Denial(`INSERT has more values than ${t.qname} has columns`, 'insert_width');
  return t.columns.slice(0, width).map((c) => ({ ResTarget: { name: c.name } }));
}

/**
 * OVERRIDING SYSTEM VALUE writes a GENERATED ALWAYS identity: identity values are shared by every
 * tenant, and one taken ahead of the sequence fails the next tenant's INSERT.
 */
function refuseOverriding(override: unknown): void {
  if (override === 'OVERRIDING_SYSTEM_VALUE')
    throw new Denial(
      'OVERRIDING SYSTEM VALUE is not allowed: leave identity columns to the database',
      'option_not_allowed',
    );
}

/** A GROUP BY with ROLLUP, CUBE or GROUPING SETS (not the empty grouping set). */
function groupingSets(sel: Body): boolean {
  return ((sel.groupClause as Node[] | undefined) ?? []).some(
    (g) =>
      nodeType(g) === 'GroupingSet' && (g.GroupingSet as { kind?: string }).kind !== 'GROUPING_SET_EMPTY',
  );
}

function rewriteInsert(body: Body, ctx: RewriteContext, scope: Scope | undefined): void {
  refuseOverriding(body.override);
  const { t, refname } = target(body, ctx, ['insert']);
  const source = body.selectStmt as Node | undefined;
  const sel = source ? (source.SelectStmt as Body | undefined) : undefined;
  if (source && !sel) throw new Denial('INSERT source must be VALUES or SELECT', 'unsupported_syntax');
  const values = sel?.valuesLists as Node[] | undefined;
  const simpleSelect = sel && !values && (sel.op === undefined || sel.op === 'SETOP_NONE');
  if (sel && !values && !simpleSelect)
    throw new Denial(
      'INSERT ... SELECT with UNION/INTERSECT/EXCEPT is not supported; insert each part on its own',
      'unsupported_syntax',
    );
  const rows = (values ?? []).map((r) => (r as { List: { items: Node[] } }).List.items);
  const targets = (simpleSelect ? (sel.targetList as Node[]) : undefined) ?? [];
  if (
    targets.some((n) =>
      names(
        ((n as { ResTarget: { val: Node } }).ResTarget.val as { ColumnRef?: { fields: Node[] } }).ColumnRef
          ?.fields,
      ).includes('*'),
    )
  )
    throw new Denial('INSERT ... SELECT * is not allowed: list the columns you select', 'insert_select_star');
  if (hasPositionalExpansion(sel)) throw rowExpansion();
  // Grouping sets make the tenant value or parent key pgwarden checked (or added) NULL in their
  // super-aggregate rows, which then belong to no tenant (red team, round 56).
  if (simpleSelect && t.scope !== 'global' && groupingSets(sel))
    throw new Denial(
      `INSERT into ${t.qname} ... SELECT with ROLLUP, CUBE or GROUPING SETS is not allowed: they turn the tenant value or parent key into NULL; insert each grouping on its own`,
      'insert_grouping_sets',
    );
  const width = values ? Math.max(...rows.map((r) => r.length)) : simpleSelect ? targets.length : 0;
  // The source is read like any query, before the tenant value is added to it.
  if (sel) rewriteSelect(sel, ctx, scope);
  const cols = sel ? insertColumns(body, t, width) : [];
  // The server refuses these too; refused here, no check below reads past a row's end.
  if (rows.some((r) => r.length !== width))
    throw new Denial('VALUES lists must all be the same length', 'insert_width');
  if (sel && cols.length !== width)
    throw new Denial(
      `INSERT has more ${cols.length > width ? 'target columns than expressions' : 'expressions than target columns'}`,
      'insert_width',
    );
  const colNames = cols.map((c) => (c as { ResTarget: { name: string } }).ResTarget.name);
  for (const c of colNames) {
    if (!t.columns.some((x) => x.name === c))
      throw new Denial(`${c} is not a column of ${t.qname}`, 'not_a_column');
    if (t.hidden.has(c))
      throw new Denial(
        `column ${t.qname}.${c} is not available to agents; usable columns: ${ctx.usableColumns(t)}`,
        'column_denied',
      );
    ctx.columns.add(`${t.qname}.${c}`);
  }
  if (t.scope === 'tenant' && t.tenantColumn) {
    const tc = t.tenantColumn.name;
    const at = colNames.indexOf(tc);
    if (at >= 0) {
      if (((cols[at] as { ResTarget: { indirection?: Node[] } }).ResTarget.indirection?.length ?? 0) > 0)
        throw new Denial(`${t.qname}.${tc} may only be set whole`, 'tenant_value_unchecked');
      for (const row of rows) checkTenantValue(row[at], t, ctx);
      if (simpleSelect) checkTenantValue((targets[at] as { ResTarget: { val: Node } }).ResTarget.val, t, ctx);
    } else {
      // pgwarden fills the tenant column in, as RLS WITH CHECK would require it to be.
      cols.push({ ResTarget: { name: tc } });
      for (const row of rows) row.push(tenantValue(t, ctx.tenant));
      if (simpleSelect) targets.push({ ResTarget: { val: tenantValue(t, ctx.tenant) } });
      if (!sel)
        body.selectStmt = {
          SelectStmt: {
            valuesLists: [{ List: { items: [tenantValue(t, ctx.tenant)] } }],
            limitOption: 'LIMIT_OPTION_DEFAULT',
            op: 'SETOP_NONE',
          },
        };
      ctx.reasons.add('tenant_column_set');
    }
    if (!sel && at < 0) cols.splice(0, cols.length, { ResTarget: { name: tc } });
    body.cols = cols;
  } else if (t.scope === 'parent' && t.parent) {
    const at = colNames.indexOf(t.parent.foreignKey);
    if (at < 0)
      throw new Denial(
        `INSERT into ${t.qname} must set ${t.parent.foreignKey} to a row of ${t.parent.policy.qname} in your tenant`,
        'parent_key_missing',
        { ruleId: `tables.${t.qname}` },
      );
    if (((cols[at] as { ResTarget: { indirection?: Node[] } }).ResTarget.indirection?.length ?? 0) > 0)
      throw new Denial(`${t.qname}.${t.parent.foreignKey} may only be set whole`, 'parent_key_missing');
    const keys = rows.map((row) => row[at]);
    if (rows.length > 1 && sharedKeyCheck(body, sel, keys)) {
      body.withClause = {
        ctes: [
          parentKeysCte(
            t,
            ctx.tenant,
            keys.map((k) => clone(k as Node)),
          ),
        ],
      };
      keys.forEach((k, i) => (keys[i] = parentKeyRef(t, k as Node)));
      ctx.reasons.add('parent_key_checked');
      ctx.keyRefusals.add(parentKeyMessage(t, ctx.tenant, true));
    } else {
      if (simpleSelect) keys.push((targets[at] as { ResTarget: { val: Node } }).ResTarget.val);
      guardParentKeys(keys, t, ctx);
    }
    rows.forEach((row, i) => (row[at] = keys[i] as Node));
    if (simpleSelect) (targets[at] as { ResTarget: { val: Node } }).ResTarget.val = keys[rows.length] as Node;
    body.cols = cols;
  } else if (sel) body.cols = cols;
  const oc = body.onConflictClause as Body | undefined;
  if (oc) {
    checkConflictTarget(oc.infer as Body | undefined, t, refname, ctx, scope);
    visitValue((oc.infer as Body | undefined)?.whereClause, ctx, scope);
    if (oc.action === 'ONCONFLICT_UPDATE') {
      // The conflicting row may belong to another tenant: only a row of the caller's is updated.
      enterTarget(ctx, t, [refname]);
      checkAssignments(oc.targetList as Node[], t, ctx, scope);
      visitValue(oc.whereClause, ctx, scope);
      oc.whereClause =
        t.scope === 'parent'
          ? parentConflictFilter(t, ctx.tenant, refname, oc.whereClause as Node | undefined)
          : filterFirst(t, ctx, refname, oc.whereClause);
      ctx.writeTarget = undefined;
    } else if (oc.action !== 'ONCONFLICT_NOTHING')
      throw new Denial('unsupported ON CONFLICT action', 'unsupported_syntax');
  }
  rewriteReturning(body, t, refname, ctx, scope, false);
}

/**
 * The columns ON CONFLICT names to find its unique index: a hidden or masked one is refused, as
 * anywhere else (whether the statement runs tells whether a unique index on it exists; red team,
 * round 11), and an index expression is checked like any expression over the target.
 */
function checkConflictTarget(
  infer: Body | undefined,
  t: TablePolicy,
  refname: string,
  ctx: RewriteContext,
  scope: Scope | undefined,
): void {
  const plain = t.columns
    .filter((c) => !t.hidden.has(c.name) && !t.masks.has(c.name))
    .map((c) => c.name)
    .join(', ');
  // A constraint named here may be one on a hidden column, which the filtered catalogs leave out:
  // whether it exists, and whether it has an index, shows in the server's answer (red team, round 12).
  if (infer?.conname !== undefined && (t.hidden.size > 0 || t.masks.size > 0))
    throw new Denial(
      `ON CONFLICT ON CONSTRAINT is not allowed on ${t.qname}, which has hidden or masked columns; name the conflict columns instead: ON CONFLICT (${plain})`,
      'column_denied',
      { ruleId: `tables.${t.qname}.columns` },
    );
  for (const e of (infer?.indexElems as Node[] | undefined) ?? []) {
    const elem = (e as { IndexElem?: Body }).IndexElem;
    const column = elem?.name as string | undefined;
    if (column !== undefined && (t.hidden.has(column) || t.masks.has(column)))
      throw new Denial(
        `column ${t.qname}.${column} is ${t.hidden.has(column) ? 'not available to agents' : 'masked'}; ON CONFLICT may name: ${plain}`,
        'column_denied',
        { ruleId: `tables.${t.qname}.columns` },
      );
    // The server looks both up while inferring the arbiter index (red team, round 49).
    checkCollation(elem?.collation as Node[] | undefined, ctx);
    checkSchemaOf('operator class', elem?.opclass as Node[] | undefined, ctx);
    if (elem?.expr !== undefined) {
      enterTarget(ctx, t, [refname]);
      visitValue(elem.expr, ctx, scope);
      ctx.writeTarget = undefined;
    }
  }
}

function rewriteMerge(body: Body, ctx: RewriteContext, scope: Scope | undefined): void {
  const arms = ((body.mergeWhenClauses as Node[] | undefined) ?? []).map(
    (n) => (n as { MergeWhenClause: Body }).MergeWhenClause,
  );
  const needs = new Set<AccessKind>();
  for (const a of arms) {
    if (a.commandType === 'CMD_UPDATE') needs.add('update');
    if (a.commandType === 'CMD_DELETE') needs.add('delete');
    if (a.commandType === 'CMD_INSERT') needs.add('insert');
  }
  const { t, refname } = target(body, ctx, [...needs]);
  if (t.scope === 'parent')
    throw new Denial(
      `MERGE into the parent-scoped table ${t.qname} is not supported; use INSERT, UPDATE and DELETE`,
      'unsupported_syntax',
    );
  const source = body.sourceRelation as Node;
  const { fromScope, inner } = levelScopes([source], ctx, scope, targetVariable(refname, t));
  body.sourceRelation = rewriteFromItem(source, ctx, fromScope);
  enterTarget(ctx, t, [refname]);
  visitValue(body.joinCondition, ctx, inner);
  // Only the caller's rows can match; rows of other tenants are neither matched nor "not matched by source".
  body.joinCondition = filterFirst(
    t,
    ctx,
    refname,
    body.joinCondition,
    hoistable(body, body.joinCondition, t, ctx, inner),
  );
  for (const a of arms) {
    visitValue(a.condition, ctx, inner);
    if (a.matchKind !== 'MERGE_WHEN_NOT_MATCHED_BY_TARGET')
      a.condition = filterFirst(t, ctx, refname, a.condition);
    if (a.commandType === 'CMD_UPDATE') checkAssignments(a.targetList as Node[], t, ctx, inner);
    if (a.commandType === 'CMD_INSERT') mergeInsert(a, t, ctx, inner);
  }
  ctx.writeTarget = undefined;
  rewriteReturning(body, t, refname, ctx, inner, true);
}

function mergeInsert(a: Body, t: TablePolicy, ctx: RewriteContext, scope: Scope | undefined): void {
  refuseOverriding(a.override);
  const values = (a.values as Node[] | undefined) ?? [];
  const prev = ctx.writeTarget;
  // The inserted values come from the source row; the target row does not exist yet.
  ctx.writeTarget = undefined;
  visitValue(values, ctx, scope);
  ctx.writeTarget = prev;
  if (values.some(expandsToColumns)) throw rowExpansion();
  const cols = insertColumns({ cols: a.targetList }, t, values.length);
  const colNames = cols.map((c) => (c as { ResTarget: { name: string } }).ResTarget.name);
  for (const c of colNames)
    if (t.hidden.has(c))
      throw new Denial(`column ${t.qname}.${c} is not available to agents`, 'column_denied');
  if (t.scope !== 'tenant' || !t.tenantColumn) return;
  const at = colNames.indexOf(t.tenantColumn.name);
  if (at >= 0) checkTenantValue(values[at], t, ctx);
  else {
    cols.push({ ResTarget: { name: t.tenantColumn.name } });
    values.push(tenantValue(t, ctx.tenant));
  }
  a.targetList = cols;
  a.values = values;
}
