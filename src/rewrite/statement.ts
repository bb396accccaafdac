import { headOf } from '../audit/clip.js';
import { names, nodeType, type Node } from '../sql/ast.js';
import {
  copyOptions,
  explainOptions,
  settableParameters,
  settableValues,
  showableParameters,
  stricterTimeout,
  timeoutMs,
} from '../policy/settings.js';
import { Denial, type RewriteContext } from './context.js';
import { literalValue, selectBody, visitValue } from './expr.js';
import { castsForDisplay } from './oid-guards.js';
import { typeSchema } from './resolve.js';
import { rewriteSelect } from './select.js';
import { rewriteWrite } from './writes.js';

type Body = Record<string, unknown>;

/** What the engine forwards for one statement: unchanged, or rewritten. */
export type StatementOutcome = { readonly changed: boolean };

const refusedStatements: Record<string, string> = {
  TruncateStmt:
    'TRUNCATE is not allowed: it would empty the table for every tenant; use DELETE, which pgwarden scopes',
  DoStmt: 'DO blocks are not allowed: pgwarden cannot check code that builds SQL at run time',
  CallStmt: 'CALL is not allowed: procedures run SQL pgwarden cannot check',
  ListenStmt: 'LISTEN is not allowed',
  NotifyStmt: 'NOTIFY is not allowed',
  LockStmt: 'LOCK TABLE is not allowed: it would block every tenant',
  VacuumStmt: 'VACUUM / ANALYZE are not allowed for agents',
  CreateTableAsStmt: 'CREATE TABLE AS is not allowed: agents cannot create objects',
};

function readQuery(q: Node, ctx: RewriteContext): void {
  const kind = nodeType(q);
  if (kind === 'SelectStmt') {
    const sel = selectBody(q);
    ctx.topLevel.add(sel);
    castsForDisplay(sel, ctx);
    rewriteSelect(sel, ctx, undefined);
    applyRowLimit(sel, ctx);
  } else if (
    kind === 'InsertStmt' ||
    kind === 'UpdateStmt' ||
    kind === 'DeleteStmt' ||
    kind === 'MergeStmt'
  ) {
    rewriteWrite(q, ctx, undefined);
    refuseUncappedReturning(q[kind] as Body, ctx);
  } else
    throw new Denial(
      `${kind} is not allowed here: only SELECT, INSERT, UPDATE, DELETE or MERGE`,
      'statement_not_allowed',
    );
}

/**
 * A row limit from the rules caps what a top-level SELECT returns: LIMIT n becomes
 * LIMIT LEAST(n, cap), so the verdict does not depend on the agent's literal.
 */
function applyRowLimit(sel: Body, ctx: RewriteContext): void {
  const cap = ctx.rowLimit;
  if (cap === undefined) return;
  const capNode: Node = { A_Const: { ival: { ival: cap } } };
  if (sel.limitOption === 'LIMIT_OPTION_WITH_TIES')
    throw new Denial(
      `FETCH ... WITH TIES cannot be combined with the row limit of ${cap}; use LIMIT`,
      'row_limit',
    );
  const given = sel.limitCount as Node | undefined;
  const isAll =
    given !== undefined && nodeType(given) === 'A_Const' && (given.A_Const as Body).isnull === true;
  sel.limitCount =
    given === undefined || isAll ? capNode : { MinMaxExpr: { op: 'IS_LEAST', args: [given, capNode] } };
  sel.limitOption = 'LIMIT_OPTION_COUNT';
  ctx.reasons.add('row_limit_applied');
}

/**
 * RETURNING has no LIMIT: a write that reads or writes a table with a row limit would return every
 * row it touched (`INSERT INTO t SELECT ... FROM orders RETURNING ...` returned 18 orders to a role
 * capped at 3, `UPDATE orders ... RETURNING id` 20; red team, round 44). A write whose RETURNING
 * stands under a top-level SELECT (a data-modifying CTE) is capped by that SELECT's limit.
 */
function refuseUncappedReturning(write: Body, ctx: RewriteContext): void {
  const cap = ctx.rowLimit;
  const returning = (write.returningClause as { exprs?: Node[] } | undefined)?.exprs ?? [];
  if (cap === undefined || returning.length === 0) return;
  throw new Denial(
    `RETURNING cannot be capped at the row limit of ${cap} that the rules set on a table this statement uses; leave RETURNING out and read the rows with a SELECT, which pgwarden caps`,
    'row_limit',
  );
}

/**
 * Over a tenant- or parent-scoped table, EXPLAIN would show counts that include other tenants: the
 * planner's row and cost estimates come from statistics over the whole table, and EXPLAIN ANALYZE
 * reports the rows pgwarden's filter removed ("Rows Removed by Filter"). The same holds for the
 * filtered catalog relations (introspection-views.ts) and information_schema views: there the
 * removed rows are the tables and columns agents may not see. So there the plan comes with
 * COSTS OFF, and ANALYZE is refused. Over global tables EXPLAIN is left as written.
 */
function hideOtherTenantsCounts(body: Body, ctx: RewriteContext): void {
  // ctx.tables also holds the tables of earlier statements in the same message: stricter, never
  // looser. The verdict depends on option values, so it is never shared across literals.
  ctx.literalSensitive = true;
  const scoped = [...ctx.tables].some((q) => {
    const t = ctx.policy.tables.get(q);
    return t !== undefined && t.scope !== 'global';
  });
  const filtered = [...ctx.tables].some(
    (q) => ctx.policy.introspectionViews.has(q) || q.startsWith('information_schema.'),
  );
  if (!scoped && !filtered) return;
  // Without costs the plan's shape still follows the statistics over every tenant's rows: a hash
  // join for `status = 'refunded'` and a nested loop for another value told that another tenant
  // has many refunded orders, and binary search found its revenue range (red team, round 21).
  if (scoped)
    throw new Denial(
      "EXPLAIN over a tenant's tables is not allowed: PostgreSQL plans from statistics over every tenant's rows, so the plan's shape tells about other tenants' data; run the query itself",
      'explain_scoped',
    );
  const options = ((body.options as Node[] | undefined) ?? []).map(
    (o) => (o as { DefElem: { defname: string; arg?: Node } }).DefElem,
  );
  if (options.some((d) => d.defname === 'analyze' && optionOn(d.arg)))
    throw new Denial(
      'EXPLAIN ANALYZE over filtered catalog relations would count the rows pgwarden hides; use EXPLAIN (COSTS OFF) to see the plan',
      'explain_analyze_scoped',
    );
  // VERBOSE prints each node's output expressions: the masks, and the typed NULLs of denied columns.
  if (options.some((d) => d.defname === 'verbose' && optionOn(d.arg)))
    throw new Denial(
      'EXPLAIN VERBOSE over filtered catalogs would print how pgwarden hides columns; use EXPLAIN (COSTS OFF)',
      'explain_verbose_scoped',
    );
  // PostgreSQL takes the last of repeated options, so every costs option goes and one off is added.
  const costs = options.filter((d) => d.defname === 'costs');
  const last = costs[costs.length - 1];
  if (last === undefined || optionOn(last.arg)) ctx.reasons.add('explain_costs_hidden');
  body.options = [
    ...options.filter((d) => d.defname !== 'costs').map((d) => ({ DefElem: d })),
    { DefElem: { defname: 'costs', arg: { String: { sval: 'off' } }, defaction: 'DEFELEM_UNSPEC' } },
  ];
}

/** A boolean option is on when bare, and when its value is anything but a plain false (fail closed). */
function optionOn(arg: Node | undefined): boolean {
  if (arg === undefined) return true;
  const s = (arg as { String?: { sval?: string } }).String?.sval;
  if (s !== undefined) return !['off', 'false', 'no', '0'].includes(s.toLowerCase());
  const i = (arg as { Integer?: { ival?: number } }).Integer;
  if (i !== undefined) return (i.ival ?? 0) !== 0;
  return true;
}

function checkOptions(opts: Node[] | undefined, allowed: Set<string>, what: string): void {
  for (const o of opts ?? []) {
    const d = (o as { DefElem?: { defname: string } }).DefElem;
    if (!d || !allowed.has(d.defname))
      throw new Denial(`${what} option ${d?.defname ?? '?'} is not allowed`, 'option_not_allowed');
  }
}

/** Judges and rewrites one top-level statement in place. Every kind not listed is refused. */
export function rewriteStatement(stmt: Node, ctx: RewriteContext): void {
  const kind = nodeType(stmt) ?? '';
  const body = stmt[kind] as Body;
  switch (kind) {
    case 'SelectStmt':
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      return readQuery(stmt, ctx);
    case 'ExplainStmt':
      checkOptions(body.options as Node[], explainOptions, 'EXPLAIN');
      readQuery(body.query as Node, ctx);
      return hideOtherTenantsCounts(body, ctx);
    case 'PrepareStmt': {
      visitValue(body.argtypes, ctx, undefined);
      checkPrepareTypes(body.argtypes as Node[] | undefined, ctx);
      const checked = ctx.paramChecks.length;
      readQuery(body.query as Node, ctx);
      // A parameter pgwarden must check (the tenant column's $n) is checked on a protocol Bind;
      // EXECUTE passes its values in SQL, where nothing would check them.
      if (ctx.paramChecks.length > checked) {
        const params = ctx.paramChecks.slice(checked).map((c) => `$${c.index}`);
        throw new Denial(
          `PREPARE ${String(body.name)}: ${params.join(', ')} would set the tenant column, and pgwarden cannot check a value passed by EXECUTE; write your tenant as a literal ('${ctx.tenant}'), or leave the tenant column out and pgwarden fills it in`,
          'tenant_value_unchecked',
        );
      }
      ctx.effects.push({ statement: ctx.statementIndex, prepare: body.name as string });
      // Its effect carries its own text (engine.ts): a shape would carry another statement's.
      ctx.literalSensitive = true;
      return;
    }
    case 'DeclareCursorStmt':
      readQuery(body.query as Node, ctx);
      ctx.effects.push({
        statement: ctx.statementIndex,
        declareCursor: body.portalname as string,
        // CURSOR_OPT_HOLD (PostgreSQL's parsenodes.h)
        ...(((body.options as number | undefined) ?? 0) & 0x20 ? { hold: true as const } : {}),
      });
      ctx.literalSensitive = true;
      return;
    case 'ExecuteStmt': {
      ctx.sessionDependent = true;
      const name = String(body.name);
      const judgedUnder = ctx.session.preparedStatements.get(name);
      if (judgedUnder === undefined)
        throw new Denial(
          `prepared statement ${name} was not prepared through pgwarden in this session`,
          'unknown_prepared',
          { code: 'PGW_UNKNOWN_STATEMENT' },
        );
      // It runs the SQL the rules of its PREPARE allowed, which the rules in force may not.
      if (judgedUnder !== ctx.rulesVersion)
        throw new Denial(
          `the rules changed since ${name} was prepared; DEALLOCATE ${name} and PREPARE it again`,
          'rules_changed',
          { code: 'PGW_RULES_CHANGED', staleName: { kind: 'prepared', name } },
        );
      visitValue(body.params, ctx, undefined);
      return;
    }
    case 'DeallocateStmt':
      ctx.effects.push({
        statement: ctx.statementIndex,
        deallocate: body.isall ? { all: true } : (body.name as string),
      });
      return;
    case 'FetchStmt': {
      ctx.sessionDependent = true;
      const name = String(body.portalname);
      const judgedUnder = ctx.session.cursors.get(name);
      if (judgedUnder === undefined) return fetchFromPortal(name, ctx);
      if (judgedUnder !== ctx.rulesVersion)
        throw new Denial(
          `the rules changed since cursor ${name} was declared; CLOSE ${name} and DECLARE it again`,
          'rules_changed',
          { code: 'PGW_RULES_CHANGED', staleName: { kind: 'cursor', name } },
        );
      return;
    }
    case 'ClosePortalStmt':
      // Cursors and protocol portals share one name space on the server: the proxy drops both.
      ctx.effects.push({
        statement: ctx.statementIndex,
        closeCursor: body.portalname === undefined ? { all: true } : (body.portalname as string),
      });
      return;
    case 'TransactionStmt': {
      const k = body.kind as string;
      if (
        k === 'TRANS_STMT_PREPARE' ||
        k === 'TRANS_STMT_COMMIT_PREPARED' ||
        k === 'TRANS_STMT_ROLLBACK_PREPARED'
      )
        throw new Denial('two-phase commit is not allowed', 'statement_not_allowed');
      if (k === 'TRANS_STMT_ROLLBACK_TO')
        ctx.effects.push({ statement: ctx.statementIndex, rollbackTo: true });
      return;
    }
    case 'VariableSetStmt':
      return checkSet(body, ctx);
    case 'UnlistenStmt':
      // Nothing to undo: agents may not LISTEN. Connection pools send UNLISTEN * between clients.
      return;
    case 'DiscardStmt':
      // What pools send between clients (PgBouncer's server_reset_query, Npgsql). Settings go back
      // to the session's start, which holds pgwarden's pins; DISCARD ALL also drops every prepared
      // statement, portal and cursor, protocol-level ones too.
      if (body.target === 'DISCARD_ALL')
        ctx.effects.push(
          { statement: ctx.statementIndex, deallocate: { all: true } },
          { statement: ctx.statementIndex, closeCursor: { all: true } },
        );
      return;
    case 'VariableShowStmt': {
      const name = String(body.name).toLowerCase();
      if (!showableParameters.has(name))
        throw new Denial(
          `SHOW ${name} is not allowed; you may show: ${[...showableParameters].join(', ')}`,
          'setting_not_allowed',
        );
      return;
    }
    case 'CopyStmt':
      return rewriteCopy(stmt, body, ctx);
    default: {
      const refused = refusedStatements[kind];
      throw new Denial(
        refused ??
          `${kind.replace(/Stmt$/, '')} statements are not allowed: agents may run SELECT, INSERT, UPDATE, DELETE, MERGE, EXPLAIN, COPY ... TO STDOUT, transaction control and a few SET commands`,
        'statement_not_allowed',
      );
    }
  }
}

/**
 * FETCH or MOVE on a name no cursor of the session has: a portal the session bound (Bind) runs the
 * statement that was judged at its Parse, as Execute would (asyncpg's Cursor.forward is a MOVE on
 * one). Any other name is refused: pgwarden would not know what it runs.
 */
function fetchFromPortal(name: string, ctx: RewriteContext): void {
  const boundUnder = ctx.session.portals.get(name);
  if (boundUnder === undefined)
    throw new Denial(`cursor ${name} was not declared through pgwarden in this session`, 'unknown_cursor', {
      code: 'PGW_UNKNOWN_CURSOR',
    });
  if (boundUnder !== ctx.rulesVersion)
    throw new Denial(
      `the rules changed since portal ${name} was bound; close it and bind its statement again`,
      'rules_changed',
      { code: 'PGW_RULES_CHANGED' },
    );
}

function checkSet(body: Body, ctx: RewriteContext): void {
  const kind = body.kind as string;
  const name = String(body.name ?? '').toLowerCase();
  if (name === 'application_name') return keepApplicationName(body, ctx);
  // Every setting goes back to the session's start: pgwarden pins its own in the startup packet,
  // so they come back to the pinned values (asyncpg's pool resets each connection so).
  if (kind === 'VAR_RESET_ALL') return;
  if (name === 'search_path' && setsPinnedSearchPath(body, ctx)) return;
  if (name === 'statement_timeout' && setsStricterTimeout(body, ctx)) return;
  if (kind === 'VAR_SET_MULTI') {
    // SET TRANSACTION ... / SET SESSION CHARACTERISTICS AS TRANSACTION ...: isolation and read-only only.
    if (name !== 'transaction' && name !== 'session characteristics')
      throw new Denial(`SET ${name} is not allowed`, 'setting_not_allowed');
    for (const a of (body.args as Node[] | undefined) ?? []) {
      const d = (a as { DefElem?: { defname: string } }).DefElem;
      if (!d || !settableParameters.has(d.defname))
        throw new Denial(`SET TRANSACTION ${d?.defname ?? '?'} is not allowed`, 'setting_not_allowed');
    }
    return;
  }
  if (!settableParameters.has(name))
    throw new Denial(
      `SET ${name} is not allowed; settable: ${[...settableParameters].join(', ')}`,
      'setting_not_allowed',
    );
  // The verdict depends on the value (settableValues), so it is not reused for another value.
  ctx.literalSensitive = true;
  const values = settableValues[name];
  for (const a of (body.args as Node[] | undefined) ?? []) {
    const value = literalValue(a);
    if (value === undefined && nodeType(a) !== 'A_Const')
      throw new Denial(`SET ${name} takes literal values only`, 'setting_not_allowed');
    if (values && !values.has((value ?? '').toLowerCase()))
      throw new Denial(
        `SET ${name} to ${value === undefined ? 'this value' : headOf(value, 64)} is not allowed; allowed: ${[...values].join(', ')}`,
        'setting_not_allowed',
      );
  }
}

/**
 * `SET search_path TO public` where pgwarden pins exactly that (Laravel connects so, and pgJDBC's
 * setSchema): a no-op. The value the server then reports is the list as it flattens it, each
 * schema quoted only where it must be; unless that is the pinned text, the SET stays refused, as
 * the server's report would otherwise end the session for a drifted setting.
 */
function setsPinnedSearchPath(body: Body, ctx: RewriteContext): boolean {
  if (body.kind !== 'VAR_SET_VALUE' || ctx.pinnedSearchPath === undefined) return false;
  const args = (body.args as Node[] | undefined) ?? [];
  const schemas = args.map((a) => (nodeType(a) === 'A_Const' ? literalValue(a) : undefined));
  if (schemas.length === 0 || schemas.some((v) => v === undefined)) return false;
  const flattened = schemas.map((v) => (/^[a-z_][a-z0-9_]*$/.test(v!) ? v : `"${v!.replace(/"/g, '""')}"`));
  ctx.literalSensitive = true;
  return flattened.join(', ') === ctx.pinnedSearchPath;
}

/**
 * statement_timeout at most as long as pgwarden's pin, never none (stricterTimeout), or back to the
 * session's start (RESET, DEFAULT: the pin, or the client's own shorter startup value).
 */
function setsStricterTimeout(body: Body, ctx: RewriteContext): boolean {
  if (body.kind === 'VAR_RESET' || body.kind === 'VAR_SET_DEFAULT') return true;
  const args = (body.args as Node[] | undefined) ?? [];
  if (body.kind !== 'VAR_SET_VALUE' || args.length !== 1 || ctx.pinnedStatementTimeoutMs === undefined)
    return false;
  ctx.literalSensitive = true;
  const value = nodeType(args[0]) === 'A_Const' ? literalValue(args[0]) : undefined;
  return value !== undefined && stricterTimeout(timeoutMs(value), ctx.pinnedStatementTimeoutMs);
}

/**
 * pgJDBC, among others, sets application_name right after connecting. pgwarden pins it to
 * pgwarden/<agent>, which is how the server's logs and pg_stat_activity name the agent, so such a
 * SET is answered but turned into SET ... TO DEFAULT: the value the session started with.
 */
function keepApplicationName(body: Body, ctx: RewriteContext): void {
  const kind = body.kind as string;
  if (kind === 'VAR_SET_DEFAULT' || kind === 'VAR_RESET') return;
  if (kind !== 'VAR_SET_VALUE' && kind !== 'VAR_SET_CURRENT')
    throw new Denial('SET application_name: only a value or DEFAULT', 'setting_not_allowed');
  body.kind = 'VAR_SET_DEFAULT';
  delete body.args;
  ctx.reasons.add('application_name_pinned');
}

/** COPY ... TO STDOUT only; COPY table becomes COPY (SELECT ...) so it is scoped like a query. */
function rewriteCopy(stmt: Node, body: Body, ctx: RewriteContext): void {
  if (body.is_from)
    throw new Denial('COPY FROM is not allowed: use INSERT, which pgwarden scopes', 'copy_from');
  if (body.filename !== undefined || body.is_program)
    throw new Denial('COPY to a server file or program is not allowed; use COPY ... TO STDOUT', 'copy_file');
  checkOptions(body.options as Node[], copyOptions, 'COPY');
  if (body.whereClause) throw new Denial('COPY ... WHERE is only for COPY FROM', 'unsupported_syntax');
  if (body.relation) {
    const attl = names(body.attlist as Node[] | undefined);
    const targetList = attl.length
      ? attl.map((c) => ({ ResTarget: { val: { ColumnRef: { fields: [{ String: { sval: c } }] } } } }))
      : [{ ResTarget: { val: { ColumnRef: { fields: [{ A_Star: {} }] } } } }];
    body.query = {
      SelectStmt: {
        targetList,
        fromClause: [{ RangeVar: body.relation }],
        limitOption: 'LIMIT_OPTION_DEFAULT',
        op: 'SETOP_NONE',
      },
    };
    delete body.relation;
    delete body.attlist;
  }
  const q = body.query as Node;
  if (nodeType(q) !== 'SelectStmt' && !(q[nodeType(q) ?? ''] as Body).returningClause)
    throw new Denial('COPY (query) needs a SELECT or a write with RETURNING', 'unsupported_syntax');
  readQuery(q, ctx);
  void stmt;
}

/**
 * PREPARE's parameter types follow the protocol's declared ones (session/param-types.ts): built-in
 * types only (not the database's own domains and enums), and not oid or oid[]. Beside a bigint
 * column the server casts the column to oid (or to a domain over it), which raises for values past
 * its range, and `id = $1` is a condition pgwarden copies next to the tenant filter, where it
 * would run on other tenants' rows: its error told another tenant's values (red team, round 18).
 */
function checkPrepareTypes(argtypes: Node[] | undefined, ctx: RewriteContext): void {
  for (const t of argtypes ?? []) {
    const parts = names((t as { TypeName?: { names?: Node[] } }).TypeName?.names);
    const last = parts[parts.length - 1] ?? '';
    if (typeSchema(parts, ctx.catalog) !== 'pg_catalog' || last === 'oid' || last === '_oid')
      throw new Denial(
        `PREPARE parameters may be of built-in types other than oid only, not ${parts.join('.')}: declare bigint, integer or text, or leave the type out`,
        'param_type_not_allowed',
      );
  }
}
