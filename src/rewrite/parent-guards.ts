import {
  and,
  catalogEquals,
  columnRef,
  nodeType,
  nullConst,
  str,
  stringConst,
  typeCast,
  type Node,
} from '../sql/ast.js';
import type { TablePolicy } from '../policy/effective.js';
import { parentFilter, parseTypeNameCache, relation, tenantFilter } from './scoped.js';

/**
 * The checks pgwarden writes into a write on a parent-scoped table (order_items via orders), where
 * the target cannot be replaced by a fenced subquery as in a read: the WHERE guard of UPDATE and
 * DELETE, and the key check of INSERT.
 */

const falseConst = (): Node => ({ A_Const: { boolval: {} } });
const trueConst = (): Node => ({ A_Const: { boolval: { boolval: true } } });

/**
 * The WHERE of an UPDATE or DELETE on a parent-scoped table:
 * `<parent filter> AND CASE WHEN EXISTS (<its parent row, in the tenant>) THEN <agent's WHERE>
 * ELSE false END`.
 * The target cannot be a fenced subquery as in a read, and the planner pushes the agent's
 * predicates down to the target's scan, below the semi-join the first conjunct becomes; CASE is
 * the one construct whose order of evaluation PostgreSQL guarantees, so the agent's predicate
 * never sees another tenant's row. Inside CASE the check is one index probe per row (an ANY there
 * would hash all the tenant's parent keys even to update one row). The first conjunct, which the
 * planner turns into a semi-join, lets it start from the parent's rows;
 * `hoisted` are copies of the agent's conjuncts that cannot raise (safe-conjuncts.ts), between the
 * two, for its indexes and join conditions.
 */
export function parentWriteFilter(
  t: TablePolicy,
  tenant: string,
  refname: string,
  where: Node | undefined,
  hoisted: readonly Node[] = [],
): Node {
  const f = parentFilter(t, tenant, [refname]);
  const exists = (): Node => parentRowExists(t, tenant, columnRef(refname, parentOf(t).foreignKey));
  return guarded(f, hoisted, exists, where);
}

/**
 * The WHERE of ON CONFLICT DO UPDATE on a parent-scoped table: `<parent filter> AND CASE WHEN
 * EXISTS (<its parent row in the tenant> FOR KEY SHARE) THEN <agent's WHERE, or true> ELSE false
 * END`. The conflicting row is the latest version, newer than the statement's snapshot, which the
 * parent filter reads: a parent the tenant deleted after the snapshot, and another tenant
 * re-created with the same key (and a child row under it), would still pass. Locking the parent
 * row reads its latest version, and a deleted one fails the check.
 */
export function parentConflictFilter(
  t: TablePolicy,
  tenant: string,
  refname: string,
  where: Node | undefined,
): Node {
  const f = parentFilter(t, tenant, [refname]);
  const exists = (): Node => parentRowExists(t, tenant, columnRef(refname, parentOf(t).foreignKey), true);
  return guarded(f, [], exists, where ?? trueConst());
}

/**
 * `<first> AND <hoisted> [AND CASE WHEN <when> THEN <where> ELSE false END]`: the conditions that
 * cannot raise stand outside CASE (they may see any row), the rest inside; no CASE when nothing is
 * left to guard.
 */
function guarded(first: Node, hoisted: readonly Node[], when: () => Node, where: Node | undefined): Node {
  const args = [first, ...hoisted];
  if (where !== undefined)
    args.push({
      CaseExpr: { args: [{ CaseWhen: { expr: when(), result: where } }], defresult: falseConst() },
    });
  return args.length === 1 ? first : { BoolExpr: { boolop: 'AND_EXPR', args } };
}

/**
 * The WHERE of an UPDATE or DELETE on a tenant-scoped table, the join condition of a MERGE into
 * one, and the WHERE of a top-level SELECT that reads one directly (inline-tenant.ts):
 * `<tenant filter> AND <hoisted> AND CASE WHEN <tenant filter> THEN <agent's condition> ELSE
 * false END`. The planner orders a scan's conditions by estimated cost, and some expressions cost
 * nothing (a jsonb subscript, CASE, ARRAY[...], IS NULL), so a plain `<tenant filter> AND <agent's
 * condition>` can run the agent's condition first, on another tenant's row, where an error it
 * raises tells the agent that row's values. CASE fixes the order whatever the costs; `hoisted`
 * (conditions that cannot raise) keep indexes and join conditions usable.
 */
export function tenantGuard(
  t: TablePolicy,
  tenant: string,
  refname: string,
  where: Node | undefined,
  hoisted: readonly Node[] = [],
): Node {
  return guarded(
    tenantFilter(t, tenant, [refname]),
    hoisted,
    () => tenantFilter(t, tenant, [refname]),
    where,
  );
}

/** Starts the text whose failed cast is a parent key guard's error. */
const GUARD_MARKER = 'pgwarden: ';
const guardFailure = /^invalid input syntax for type integer: "pgwarden: (.*)"$/s;

/**
 * What the agent reads when a parent key guard fires: a guard per row (parentKeyGuard), or the
 * statement's shared check (parentKeysCte). The rewriter keeps each it writes on the verdict
 * (`refusals`), so the session recognises exactly these.
 */
export function parentKeyMessage(t: TablePolicy, tenant: string, shared: boolean): string {
  const p = parentOf(t);
  return (
    `${t.qname}.${p.foreignKey} must reference a row of ${p.policy.qname} in tenant ${tenant}` +
    (shared ? ', and a value given does not; no row was written' : '; the row was not written')
  );
}

/**
 * The agent-facing message when the server's error is a parent key guard firing (SQLSTATE 22P02
 * from the cast), else undefined. Only a refusal the statement's own rewrite carries matches: an
 * agent's cast of a text of its choosing, at run time (a scalar subquery over a bind value), gets
 * the server's error, redacted as any other, not pgwarden's label on a table of its choosing (red
 * team, rounds 25 and 26).
 */
export function parentKeyRefusal(serverMessage: string, refusals: readonly string[]): string | undefined {
  const text = guardFailure.exec(serverMessage)?.[1];
  return text !== undefined && refusals.includes(text) ? text : undefined;
}

/** The alias of the one-row subquery that holds the value a parent key guard checks. */
export const GUARD_ALIAS = 'pgwarden_key';

/**
 * The value written into a parent-scoped table's foreign key, checked in the statement itself:
 * `(SELECT CASE WHEN EXISTS (<the parent row with key k, in the tenant>) THEN k ELSE <error> END
 *   FROM (SELECT (<value>)::<type> AS k) AS pgwarden_key)`.
 * The value is evaluated once (a volatile one cannot pass the check and then differ), and a key
 * outside the tenant raises, as RLS WITH CHECK does, instead of silently dropping the row. The
 * error is a cast of a scalar subquery's text, so the planner cannot fold it into every plan.
 */
export function parentKeyGuard(t: TablePolicy, tenant: string, value: Node): Node {
  const p = t.parent;
  const fk = p ? t.columns.find((c) => c.name === p.foreignKey) : undefined;
  if (!p || !fk) throw new Error(`${t.qname} has no parent key`);
  const k = (): Node => columnRef(GUARD_ALIAS, 'k');
  const refusal = raise(GUARD_MARKER + parentKeyMessage(t, tenant, false), fk.sqlType);
  // One index probe of the parent's key per row: an ANY over the tenant's keys would hash them
  // all again for every row of a multi-row VALUES. The probe locks the parent row (FOR KEY SHARE,
  // as the foreign key's own check does): the check reads the statement's snapshot and the
  // foreign key the latest rows, so without the lock the tenant could delete its parent row while
  // the INSERT waits (on another of its transactions), and another tenant's new row could take
  // that key before the foreign key is checked.
  const exists = parentRowExists(t, tenant, k(), true);
  const check = {
    CaseExpr: {
      args: [{ CaseWhen: { expr: exists, result: k() } }],
      defresult: refusal,
    },
  };
  const holder = {
    RangeSubselect: {
      subquery: select([{ ResTarget: { name: 'k', val: typeCast(value, parseTypeNameCache(fk.sqlType)) } }]),
      alias: { aliasname: GUARD_ALIAS },
    },
  };
  return {
    SubLink: {
      subLinkType: 'EXPR_SUBLINK',
      subselect: select([{ ResTarget: { val: check } }], [holder]),
    },
  };
}

/** The CTE that checks every key of a multi-row VALUES at once (parentKeysCte). */
export const KEYS_CTE = 'pgwarden_keys';

/**
 * A value that reads the same wherever it stands (a literal or a parameter), so it may be written
 * twice: once into the keys the CTE checks, once into its row.
 */
export function constantKey(v: unknown): boolean {
  const type = nodeType(v);
  return type === 'A_Const' || type === 'ParamRef';
}

/**
 * The keys of a multi-row VALUES into a parent-scoped table, checked once for the statement:
 * `pgwarden_keys AS MATERIALIZED (SELECT CASE WHEN <no key is NULL, and every distinct key found
 * among the tenant's parent rows, locked FOR KEY SHARE> THEN true ELSE <error> END FROM (SELECT ARRAY[<keys>])
 * AS k(keys))`. Each row then reads its key through the CTE (parentKeyRef), so the check runs before
 * any row is written, and one error refuses the statement, as a per-row guard's would. A guard per
 * row (parentKeyGuard) cost some 480 bytes of SQL a row: a 1,000-row INSERT took a second to judge.
 */
export function parentKeysCte(t: TablePolicy, tenant: string, values: readonly Node[]): Node {
  const p = parentOf(t);
  const fk = foreignKeyColumn(t);
  const keys = columnRef('k', 'keys');
  const count = (arg?: Node, distinct = false): Node => ({
    FuncCall: {
      funcname: [str('pg_catalog'), str('count')],
      ...(arg ? { args: [arg] } : { agg_star: true }),
      ...(distinct ? { agg_distinct: true } : {}),
      funcformat: 'COERCE_EXPLICIT_CALL',
    },
  });
  // Distinct keys found, not parent rows: were the referenced column not unique, two rows of one
  // key would stand in for a key of another tenant.
  const reference = (): Node => columnRef(p.policy.schema, p.policy.name, p.references);
  const parents = {
    SubLink: {
      subLinkType: 'EXPR_SUBLINK',
      subselect: select(
        [{ ResTarget: { val: count(columnRef('p', 'k'), true) } }],
        [
          {
            RangeSubselect: {
              subquery: {
                SelectStmt: {
                  targetList: [{ ResTarget: { name: 'k', val: reference() } }],
                  fromClause: [relation(p.policy, true)],
                  whereClause: and(
                    {
                      A_Expr: {
                        kind: 'AEXPR_OP_ANY',
                        name: [str('pg_catalog'), str('=')],
                        lexpr: reference(),
                        rexpr: keys,
                      },
                    },
                    tenantFilter(p.policy, tenant),
                  ),
                  lockingClause: [
                    { LockingClause: { strength: 'LCS_FORKEYSHARE', waitPolicy: 'LockWaitBlock' } },
                  ],
                  limitOption: 'LIMIT_OPTION_DEFAULT',
                  op: 'SETOP_NONE',
                },
              },
              alias: { aliasname: 'p' },
            },
          },
        ],
      ),
    },
  };
  const x = columnRef('u', 'x');
  const allFound = {
    SubLink: {
      subLinkType: 'EXPR_SUBLINK',
      subselect: select(
        [
          {
            ResTarget: {
              val: {
                BoolExpr: {
                  boolop: 'AND_EXPR',
                  args: [catalogEquals(count(), count(x)), catalogEquals(count(x, true), parents)],
                },
              },
            },
          },
        ],
        [
          {
            RangeFunction: {
              functions: [
                {
                  List: {
                    items: [
                      {
                        FuncCall: {
                          funcname: [str('pg_catalog'), str('unnest')],
                          args: [keys],
                          funcformat: 'COERCE_EXPLICIT_CALL',
                        },
                      },
                      {},
                    ],
                  },
                },
              ],
              alias: { aliasname: 'u', colnames: [str('x')] },
            },
          },
        ],
      ),
    },
  };
  const message = GUARD_MARKER + parentKeyMessage(t, tenant, true);
  const check = {
    CaseExpr: {
      args: [{ CaseWhen: { expr: allFound, result: { A_Const: { boolval: { boolval: true } } } } }],
      defresult: raise(message, 'boolean'),
    },
  };
  const array = {
    A_ArrayExpr: { elements: values.map((v) => typeCast(v, parseTypeNameCache(fk.sqlType))) },
  };
  return {
    CommonTableExpr: {
      ctename: KEYS_CTE,
      ctematerialized: 'CTEMaterializeAlways',
      ctequery: select(
        [{ ResTarget: { name: 'ok', val: check } }],
        [
          {
            RangeSubselect: {
              subquery: select([{ ResTarget: { name: 'keys', val: array } }]),
              alias: { aliasname: 'k' },
            },
          },
        ],
      ),
    },
  };
}

/** A row's key read through the statement's key check: `(SELECT CAST(<value> AS <type>) FROM pgwarden_keys)`. */
export function parentKeyRef(t: TablePolicy, value: Node): Node {
  return {
    SubLink: {
      subLinkType: 'EXPR_SUBLINK',
      subselect: select(
        [{ ResTarget: { val: typeCast(value, parseTypeNameCache(foreignKeyColumn(t).sqlType)) } }],
        [{ RangeVar: { relname: KEYS_CTE, inh: true, relpersistence: 'p' } }],
      ),
    },
  };
}

/**
 * `CASE WHEN CAST((SELECT '<message>'::text) AS int) = 0 THEN NULL::<type> END`: an error whose text
 * is the message (parentKeyRefusal reads it back). The cast is of a scalar subquery's text, so the
 * planner cannot fold it into every plan.
 */
function raise(message: string, type: string): Node {
  return {
    CaseExpr: {
      args: [
        {
          CaseWhen: {
            expr: catalogEquals(
              typeCast(
                {
                  SubLink: {
                    subLinkType: 'EXPR_SUBLINK',
                    subselect: select([
                      { ResTarget: { val: typeCast(stringConst(message), parseTypeNameCache('text')) } },
                    ]),
                  },
                },
                parseTypeNameCache('integer'),
              ),
              { A_Const: { ival: {} } },
            ),
            result: typeCast(nullConst(), parseTypeNameCache(type)),
          },
        },
      ],
    },
  };
}

function foreignKeyColumn(t: TablePolicy): TablePolicy['columns'][number] {
  const fk = t.parent ? t.columns.find((c) => c.name === t.parent?.foreignKey) : undefined;
  if (!fk) throw new Error(`${t.qname} has no parent key`);
  return fk;
}

/**
 * `EXISTS (SELECT 1 FROM parent WHERE parent.key = <key> AND <parent tenant filter>)`, with
 * `FOR KEY SHARE` when `lock`.
 */
export function parentRowExists(t: TablePolicy, tenant: string, key: Node, lock = false): Node {
  const p = parentOf(t);
  return {
    SubLink: {
      subLinkType: 'EXISTS_SUBLINK',
      subselect: {
        SelectStmt: {
          targetList: [{ ResTarget: { val: { A_Const: { ival: { ival: 1 } } } } }],
          fromClause: [relation(p.policy, true)],
          whereClause: and(
            catalogEquals(columnRef(p.policy.schema, p.policy.name, p.references), key),
            tenantFilter(p.policy, tenant),
          ),
          ...(lock
            ? {
                lockingClause: [
                  { LockingClause: { strength: 'LCS_FORKEYSHARE', waitPolicy: 'LockWaitBlock' } },
                ],
              }
            : {}),
          limitOption: 'LIMIT_OPTION_DEFAULT',
          op: 'SETOP_NONE',
        },
      },
    },
  };
}

function parentOf(t: TablePolicy): NonNullable<TablePolicy['parent']> {
  if (!t.parent) throw new Error(`${t.qname} has no parent`);
  return t.parent;
}

function select(targetList: Node[], fromClause?: Node[]): Node {
  return {
    SelectStmt: {
      targetList,
      ...(fromClause ? { fromClause } : {}),
      limitOption: 'LIMIT_OPTION_DEFAULT',
      op: 'SETOP_NONE',
    },
  };
}
