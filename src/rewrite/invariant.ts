import {
  columnRef,
  expandsToColumns,
  hasPositionalExpansion,
  names,
  nodeType,
  sameTree,
  type Node,
  type RangeVar,
} from '../sql/ast.js';
import type { Catalog } from '../policy/catalog.js';
import { needsSubquery, type EffectivePolicy, type TablePolicy } from '../policy/effective.js';
import type { ParamCheck } from '../policy/verdict.js';
import { exactLiteralValue, literalValue, tenantKeepingCasts } from './expr.js';
import type { Scope } from './context.js';
import { cteBodyScope, resolveRelation } from './resolve.js';
import {
  isSafe,
  ownColumns,
  rejectsNull,
  writeRelations,
  type ColumnTypes,
  type ParamUse,
} from './safe-conjuncts.js';
import {
  constantKey,
  GUARD_ALIAS,
  parentKeyGuard,
  parentKeyRef,
  parentKeysCte,
  parentRowExists,
} from './parent-guards.js';
import { havingGuardWhen } from './inline-tenant.js';
import { parentFilter, tenantFilter, tenantValue, visibleTargets } from './scoped.js';

type Body = Record<string, unknown>;

/**
 * Checks pgwarden's own output, re-parsed, independently of how it was produced: every reference
 * to a listed table is either the exact scoped subquery for the caller's tenant, a write target
 * whose WHERE / ON starts with the tenant filter and whose inserted tenant values are the
 * caller's, or a table that needs no scoping; no hidden column is named anywhere else.
 * Returns the first violation, or undefined when the invariant holds.
 */
export function checkInvariant(
  stmts: readonly Node[],
  policy: EffectivePolicy,
  catalog: Catalog,
  tenant: string,
  paramChecks: readonly ParamCheck[],
  usedOnce: ParamUse,
): string | undefined {
  // Every other listed table with hidden columns is read through its scoped subquery, which
  // shows none of them (or the walk below fails): only a write target's hidden columns can be
  // named. A column of that name elsewhere (`(SELECT 'x' AS ssn) s`) is another's (red team,
  // round 55: any such name failed every statement).
  const hiddenNames = new Set<string>();
  for (const rv of writeTargets(stmts)) {
    const r = resolveRelation(rv, catalog, undefined);
    const t = r.kind === 'relation' ? policy.tables.get(r.qname) : undefined;
    for (const h of t?.hidden ?? []) hiddenNames.add(h);
  }
  const checkedParams = new Set(paramChecks.map((p) => p.index));

  const tableOf = (rv: RangeVar, scope: Scope | undefined): TablePolicy | 'cte' | 'other' | 'unknown' => {
    const r = resolveRelation(rv, catalog, scope);
    if (r.kind === 'cte') return 'cte';
    if (r.kind === 'missing') return 'unknown';
    if (policy.introspection.has(r.qname)) return 'other';
    return policy.tables.get(r.qname) ?? 'unknown';
  };

  /** The WHEN of `n` if `n` is `CASE WHEN <when> THEN … ELSE false END`, the guards' form. */
  const caseGuardWhen = (n: unknown, when: unknown): unknown => {
    const c = (n as { CaseExpr?: Body } | undefined)?.CaseExpr;
    const arm = (c?.args as { CaseWhen: { expr: unknown } }[] | undefined)?.[0];
    const ok =
      c !== undefined &&
      c.arg === undefined &&
      (c.args as unknown[] | undefined)?.length === 1 &&
      arm !== undefined &&
      sameTree(arm.CaseWhen.expr, when) &&
      sameTree(c.defresult, { A_Const: { boolval: {} } });
    return ok ? arm.CaseWhen.expr : undefined;
  };

  /**
   * Proves `where` is tenantGuard(t, tenant, refname, W, hoisted): the filter alone, or the
   * filter, conditions that cannot raise, and CASE WHEN <filter> THEN W ELSE false END.
   */
  const tenantGuarded = (where: unknown, t: TablePolicy, refname: string, typeOf: ColumnTypes): boolean => {
    const f = tenantFilter(t, tenant, [refname]);
    if (sameTree(where, f)) return true;
    const b = (where as { BoolExpr?: { boolop: string; args: unknown[] } } | undefined)?.BoolExpr;
    if (b?.boolop !== 'AND_EXPR' || b.args.length < 2 || !sameTree(b.args[0], f)) return false;
    if (!b.args.slice(1, -1).every((h) => isSafe(h as Node, typeOf, usedOnce))) return false;
    // Nothing left to guard: every condition after the filter is one that cannot raise.
    if (isSafe(b.args[b.args.length - 1] as Node, typeOf, usedOnce)) return true;
    return caseGuardWhen(b.args[b.args.length - 1], f) !== undefined;
  };

  /** The caller's tenant exactly: a literal, pgwarden's own typed one, or a checked parameter. */
  const tenantValueOk = (v: unknown, t: TablePolicy): boolean => {
    const keeping = tenantKeepingCasts(t.tenantColumn?.type ?? '');
    if (exactLiteralValue(v, keeping) === tenant || sameTree(v, tenantValue(t, tenant))) return true;
    const p = (v as { ParamRef?: { number: number } } | undefined)?.ParamRef;
    return p !== undefined && checkedParams.has(p.number);
  };

  /** The table's filter, alone or followed by conditions that cannot raise and reject NULL. */
  function narrowed(where: unknown, t: TablePolicy): boolean {
    const f = t.scope === 'tenant' ? tenantFilter(t, tenant) : parentFilter(t, tenant);
    if (sameTree(where, f)) return true;
    const b = (where as { BoolExpr?: { boolop: string; args: Node[] } } | undefined)?.BoolExpr;
    return (
      b?.boolop === 'AND_EXPR' &&
      b.args.length > 1 &&
      sameTree(b.args[0], f) &&
      b.args.slice(1).every((c) => isSafe(c, ownColumns(t), usedOnce) && rejectsNull(c))
    );
  }

  function scopedSubquery(sub: Body): TablePolicy | undefined {
    const from = sub.fromClause as Node[] | undefined;
    if (from?.length !== 1 || !from[0]) return undefined;
    let item = from[0];
    if (nodeType(item) === 'RangeTableSample') item = (item.RangeTableSample as { relation: Node }).relation;
    if (nodeType(item) !== 'RangeVar') return undefined;
    const rv = item.RangeVar as RangeVar;
    if (rv.schemaname === undefined) return undefined;
    const t = policy.tables.get(`${rv.schemaname}.${rv.relname}`);
    if (!t || !needsSubquery(t)) return undefined;
    const allowedKeys = new Set([
      'targetList',
      'fromClause',
      'whereClause',
      'limitOption',
      'op',
      'limitOffset',
    ]);
    if (Object.keys(sub).some((k) => !allowedKeys.has(k))) return undefined;
    if (!sameTree(sub.targetList, visibleTargets(t))) return undefined;
    if (t.scope !== 'global' && (!narrowed(sub.whereClause, t) || literalValue(sub.limitOffset) !== '0'))
      return undefined;
    if (t.scope === 'global' && (sub.whereClause || sub.limitOffset)) return undefined;
    return t;
  }

  let violation: string | undefined;
  const fail = (m: string): void => {
    violation ??= m;
  };
  /** pgwarden's own parent checks, proven exact: their reads of the parent are not the agent's. */
  const trusted = new Set<unknown>();

  /**
   * Proves `where` is parentWriteFilter(t, tenant, refname, W, hoisted), with every hoisted
   * conjunct one that cannot raise, and trusts its parent filter and its parent-row check.
   */
  const parentGuarded = (where: unknown, t: TablePolicy, refname: string, typeOf: ColumnTypes): boolean => {
    const f = parentFilter(t, tenant, [refname]);
    if (sameTree(where, f)) {
      trusted.add(where);
      return true;
    }
    const b = (where as { BoolExpr?: { boolop: string; args: unknown[] } } | undefined)?.BoolExpr;
    if (b?.boolop !== 'AND_EXPR' || b.args.length < 2 || !sameTree(b.args[0], f)) return false;
    if (!b.args.slice(1, -1).every((h) => isSafe(h as Node, typeOf, usedOnce))) return false;
    if (isSafe(b.args[b.args.length - 1] as Node, typeOf, usedOnce)) {
      trusted.add(b.args[0]);
      return true;
    }
    const exists = parentRowExists(t, tenant, columnRef(refname, t.parent?.foreignKey ?? ''));
    const when = caseGuardWhen(b.args[b.args.length - 1], exists);
    if (when === undefined) return false;
    trusted.add(b.args[0]);
    trusted.add(when);
    return true;
  };

  /** Proves `where` is parentConflictFilter(t, tenant, refname, W) and trusts its checks. */
  const conflictGuarded = (where: unknown, t: TablePolicy, refname: string): boolean => {
    const b = (where as { BoolExpr?: { boolop: string; args: unknown[] } } | undefined)?.BoolExpr;
    if (b?.boolop !== 'AND_EXPR' || b.args.length !== 2) return false;
    if (!sameTree(b.args[0], parentFilter(t, tenant, [refname]))) return false;
    const locked = parentRowExists(t, tenant, columnRef(refname, t.parent?.foreignKey ?? ''), true);
    const when = caseGuardWhen(b.args[1], locked);
    if (when === undefined) return false;
    trusted.add(b.args[0]);
    trusted.add(when);
    return true;
  };

  /** Proves `v` is parentKeyGuard(t, tenant, x); trusts it and returns x, the agent's value. */
  const guardedKey = (v: unknown, t: TablePolicy): unknown => {
    const holder = (
      (v as { SubLink?: { subselect: Node } } | undefined)?.SubLink?.subselect.SelectStmt as Body | undefined
    )?.fromClause as Node[] | undefined;
    const rs = holder?.[0]?.RangeSubselect as { subquery: Node; alias?: { aliasname?: string } } | undefined;
    if (rs?.alias?.aliasname !== GUARD_ALIAS) return undefined;
    const tl = (rs.subquery.SelectStmt as Body | undefined)?.targetList as Node[] | undefined;
    const x = (tl?.[0]?.ResTarget as { val?: { TypeCast?: { arg: Node } } } | undefined)?.val?.TypeCast?.arg;
    if (x === undefined || !sameTree(v, parentKeyGuard(t, tenant, x))) return undefined;
    trusted.add(v);
    return x;
  };

  /**
   * Proves the keys of a multi-row VALUES are checked once for the statement: its WITH is exactly
   * parentKeysCte(t, tenant, those keys) and each key is parentKeyRef(t, its literal or parameter).
   * Trusts them and returns the agent's values, or undefined if the form is not that one.
   */
  const sharedKeys = (
    body: Body,
    sel: Body,
    keys: readonly unknown[],
    t: TablePolicy,
  ): unknown[] | undefined => {
    const ctes = (body.withClause as { ctes?: unknown[] } | undefined)?.ctes;
    if (ctes?.length !== 1 || sel.withClause !== undefined) return undefined;
    const values = keys.map((k) => {
      const tl = (
        (k as { SubLink?: { subselect: Node } } | undefined)?.SubLink?.subselect.SelectStmt as
          Body | undefined
      )?.targetList as Node[] | undefined;
      const x = (tl?.[0]?.ResTarget as { val?: { TypeCast?: { arg: Node } } } | undefined)?.val?.TypeCast
        ?.arg;
      return x !== undefined && constantKey(x) && sameTree(k, parentKeyRef(t, x)) ? x : undefined;
    });
    if (values.some((x) => x === undefined)) return undefined;
    if (!sameTree(ctes[0], parentKeysCte(t, tenant, values as Node[]))) return undefined;
    trusted.add(ctes[0] as object);
    for (const k of keys) trusted.add(k as object);
    return values;
  };

  function walk(v: unknown, scope: Scope | undefined, key?: string): void {
    if (violation || v === null || typeof v !== 'object' || trusted.has(v)) return;
    if (key === 'lockingClause') return; // names FROM items, not relations
    if (Array.isArray(v)) {
      for (const x of v) walk(x, scope);
      return;
    }
    const type = nodeType(v);
    const isNode = type !== undefined && /^[A-Z]/.test(type);
    const body = (isNode ? (v as Body)[type] : v) as Body;
    if (isNode && type === 'RangeSubselect') {
      const sub = ((body.subquery as Node).SelectStmt ?? {}) as Body;
      if (scopedSubquery(sub)) {
        const from = (sub.fromClause as Node[])[0] as Node;
        if (nodeType(from) === 'RangeTableSample') {
          walk((from.RangeTableSample as Body).args, scope);
          walk((from.RangeTableSample as Body).repeatable, scope);
        }
        return;
      }
    }
    if (isNode && type === 'ColumnRef') {
      const last = names((body as { fields: Node[] }).fields).pop() ?? '';
      if (hiddenNames.has(last)) fail(`hidden column ${last} is referenced`);
      return;
    }
    if (isNode && type === 'RangeVar') {
      const t = tableOf(body as unknown as RangeVar, scope);
      if (t === 'unknown') fail(`relation ${(body as unknown as RangeVar).relname} is not listed`);
      else if (t !== 'cte' && t !== 'other' && needsSubquery(t))
        fail(`${t.qname} is read without its scoped subquery`);
      return;
    }
    if (!isNode && typeof body.relname === 'string') {
      fail(`unexpected relation reference ${body.relname}`);
      return;
    }
    let inner = scope;
    const w = body.withClause as { ctes?: Node[]; recursive?: boolean } | undefined;
    const cteNames = w?.ctes?.map((c) => (c.CommonTableExpr as { ctename: string }).ctename) ?? [];
    if (w?.ctes) inner = { ctes: new Set(cteNames), parent: scope };
    // First the write's own checks: they trust the CTE that checks an INSERT's keys (sharedKeys).
    if (
      isNode &&
      (type === 'UpdateStmt' || type === 'DeleteStmt' || type === 'InsertStmt' || type === 'MergeStmt')
    )
      checkWrite(type, body, inner);
    w?.ctes?.forEach((c, i) => {
      if (!trusted.has(c))
        walk((c.CommonTableExpr as Body).ctequery, cteBodyScope(scope, cteNames, i, w.recursive === true));
    });
    for (const [k, child] of Object.entries(body)) {
      if (
        k === 'withClause' ||
        (k === 'relation' && isNode && type !== 'CopyStmt' && type !== 'RangeTableSample')
      )
        continue;
      walk(child, inner, k);
    }
  }

  function checkWrite(type: string, body: Body, scope: Scope | undefined): void {
    const rv = body.relation as RangeVar;
    const t = tableOf(rv, undefined);
    if (t === 'cte' || t === 'other' || t === 'unknown')
      return fail(`write to unlisted relation ${rv.relname}`);
    for (const rt of [
      ...((body.targetList as Node[] | undefined) ?? []),
      ...((body.cols as Node[] | undefined) ?? []),
    ]) {
      const name = (rt.ResTarget as { name?: string }).name;
      if (name !== undefined && t.hidden.has(name)) fail(`hidden column ${name} is written`);
    }
    // Inserted values are checked by position: nothing may expand into several columns.
    const source = (body.selectStmt as Node | undefined)?.SelectStmt as Body | undefined;
    const mergeValues = ((body.mergeWhenClauses as Node[] | undefined) ?? []).flatMap(
      (n) => ((n.MergeWhenClause as Body).values as unknown[] | undefined) ?? [],
    );
    if (hasPositionalExpansion(source) || mergeValues.some(expandsToColumns))
      return fail(`a value inserted into ${t.qname} expands into several columns`);
    const refname = rv.alias?.aliasname ?? rv.relname;
    if (t.scope === 'parent') return checkParentWrite(type, body, t, refname, scope);
    if (t.scope !== 'tenant') return;
    const tc = t.tenantColumn?.name ?? '';
    if (type === 'UpdateStmt' || type === 'DeleteStmt') {
      const typeOf = writeRelations(body, t, tenant, policy, catalog, scope);
      if (!tenantGuarded(body.whereClause, t, refname, typeOf))
        fail(`${type} on ${t.qname} lacks the tenant filter`);
      for (const rt of (body.targetList as Node[] | undefined) ?? []) {
        const r = rt.ResTarget as { name?: string; val?: unknown };
        if (r.name === tc && !tenantValueOk(r.val, t)) fail('tenant column assigned another value');
      }
    }
    if (type === 'InsertStmt') {
      const cols = ((body.cols as Node[] | undefined) ?? []).map(
        (c) => (c.ResTarget as { name: string }).name,
      );
      const at = cols.indexOf(tc);
      if (at < 0) return fail(`INSERT into ${t.qname} does not set ${tc}`);
      const sel = (body.selectStmt as Node | undefined)?.SelectStmt as Body | undefined;
      const rows = ((sel?.valuesLists as Node[] | undefined) ?? []).map(
        (r) => (r.List as { items: unknown[] }).items,
      );
      for (const row of rows)
        if (!tenantValueOk(row[at], t)) fail(`INSERT into ${t.qname} sets ${tc} to another value`);
      if (sel && !sel.valuesLists) {
        const tl = (sel.targetList as Node[] | undefined) ?? [];
        if (!tenantValueOk((tl[at]?.ResTarget as { val?: unknown } | undefined)?.val, t))
          fail(`INSERT ... SELECT into ${t.qname} sets ${tc} unchecked`);
      }
      const oc = body.onConflictClause as Body | undefined;
      if (oc?.action === 'ONCONFLICT_UPDATE' && !tenantGuarded(oc.whereClause, t, refname, () => undefined))
        fail(`ON CONFLICT DO UPDATE on ${t.qname} lacks the tenant filter`);
    }
    if (type === 'MergeStmt') {
      const typeOf = writeRelations(body, t, tenant, policy, catalog, scope);
      if (!tenantGuarded(body.joinCondition, t, refname, typeOf))
        fail(`MERGE into ${t.qname} lacks the tenant filter`);
      for (const n of (body.mergeWhenClauses as Node[] | undefined) ?? []) {
        const a = n.MergeWhenClause as Body;
        if (
          a.matchKind !== 'MERGE_WHEN_NOT_MATCHED_BY_TARGET' &&
          !tenantGuarded(a.condition, t, refname, () => undefined)
        )
          fail('MERGE arm lacks the tenant filter');
        if (a.commandType === 'CMD_INSERT') {
          const cols = ((a.targetList as Node[] | undefined) ?? []).map(
            (c) => (c.ResTarget as { name: string }).name,
          );
          const at = cols.indexOf(tc);
          if (at < 0 || !tenantValueOk((a.values as unknown[] | undefined)?.[at], t))
            fail(`MERGE INSERT into ${t.qname} does not set ${tc}`);
        }
      }
    }
  }

  function checkParentWrite(
    type: string,
    body: Body,
    t: TablePolicy,
    refname: string,
    scope: Scope | undefined,
  ): void {
    const fk = t.parent?.foreignKey;
    const assignsKey = (list: unknown): boolean =>
      ((list as Node[] | undefined) ?? []).some((rt) => (rt.ResTarget as { name?: string }).name === fk);
    if (type === 'MergeStmt') return fail(`MERGE into parent-scoped ${t.qname}`);
    if (type === 'UpdateStmt' || type === 'DeleteStmt') {
      const typeOf = writeRelations(body, t, tenant, policy, catalog, scope);
      if (!parentGuarded(body.whereClause, t, refname, typeOf))
        fail(`${type} on ${t.qname} lacks the parent filter`);
      if (assignsKey(body.targetList)) fail(`${t.qname}.${fk ?? ''} is assigned`);
      return;
    }
    const cols = ((body.cols as Node[] | undefined) ?? []).map((c) => (c.ResTarget as { name: string }).name);
    const at = fk === undefined ? -1 : cols.indexOf(fk);
    if (at < 0) return fail(`INSERT into ${t.qname} does not set ${fk ?? 'its parent key'}`);
    const sel = (body.selectStmt as Node | undefined)?.SelectStmt as Body | undefined;
    const keys = sel?.valuesLists
      ? (sel.valuesLists as Node[]).map((r) => (r.List as { items: unknown[] }).items[at])
      : [((sel?.targetList as Node[] | undefined)?.[at]?.ResTarget as { val?: unknown } | undefined)?.val];
    const shared = sel?.valuesLists ? sharedKeys(body, sel, keys, t) : undefined;
    for (const [i, k] of keys.entries()) {
      const x = shared?.[i] ?? guardedKey(k, t);
      if (x === undefined) return fail(`INSERT into ${t.qname} sets ${fk ?? ''} unchecked`);
      walk(x, scope);
    }
    const oc = body.onConflictClause as Body | undefined;
    if (oc?.action === 'ONCONFLICT_UPDATE') {
      if (!conflictGuarded(oc.whereClause, t, refname))
        fail(`ON CONFLICT DO UPDATE on ${t.qname} lacks the locked parent check`);
      if (assignsKey(oc.targetList)) fail(`${t.qname}.${fk ?? ''} is assigned`);
    }
  }

  /**
   * The SELECTs nothing encloses (a statement's query and its set operation's arms) may read a tenant
   * table with nothing to hide directly when their WHERE is tenantGuard's (inline-tenant.ts).
   */
  function trustInlinedRead(sel: Body): void {
    if (sel.op !== undefined && sel.op !== 'SETOP_NONE') {
      trustInlinedRead(sel.larg as Body);
      trustInlinedRead(sel.rarg as Body);
      return;
    }
    const from = sel.fromClause as Node[] | undefined;
    const item = from?.length === 1 ? from[0] : undefined;
    const rv = item?.RangeVar as RangeVar | undefined;
    if (!item || !rv || rv.alias?.colnames !== undefined) return;
    const t = tableOf(rv, undefined);
    if (typeof t !== 'object' || t.scope !== 'tenant' || t.hidden.size > 0 || t.masks.size > 0) return;
    // A HAVING must be havingGuard's: bare, the planner could move it beside the filter.
    const having =
      sel.havingClause === undefined || caseGuardWhen(sel.havingClause, havingGuardWhen()) !== undefined;
    if (having && tenantGuarded(sel.whereClause, t, rv.alias?.aliasname ?? rv.relname, ownColumns(t)))
      trusted.add(item);
  }
  for (const s of stmts) {
    const kind = nodeType(s) ?? '';
    const body = s[kind] as Body | undefined;
    const query = kind === 'SelectStmt' ? s : (body?.query as Node | undefined);
    const sel = query?.SelectStmt as Body | undefined;
    if (sel && ['SelectStmt', 'ExplainStmt', 'PrepareStmt', 'DeclareCursorStmt', 'CopyStmt'].includes(kind))
      trustInlinedRead(sel);
  }
  for (const s of stmts) walk(s, undefined);
  return violation;
}

const writeKinds: ReadonlySet<string> = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/** The targets of every write in the statements, at any depth (data-modifying CTEs, PREPARE). */
function writeTargets(v: unknown, out: RangeVar[] = []): RangeVar[] {
  if (v === null || typeof v !== 'object') return out;
  if (Array.isArray(v)) {
    for (const x of v) writeTargets(x, out);
    return out;
  }
  for (const [k, child] of Object.entries(v)) {
    if (writeKinds.has(k)) {
      const rel = (child as { relation?: RangeVar } | undefined)?.relation;
      if (rel) out.push(rel);
    }
    writeTargets(child, out);
  }
  return out;
}
