import type { ErrorCode } from '../errors/registry.js';
import { deeperThan, firstDifference, sameTree, type Node } from '../sql/ast.js';
import { deparseStatements } from '../sql/deparse.js';
import { agreesWithScanner, literalShape, type LiteralShape } from '../sql/literal-shape.js';
import { MAX_NESTING_ESTIMATE, NESTING_CHECK_CHARS, nestingEstimate } from '../sql/nesting.js';
import { fingerprint, parseSql, ParserLostError, scanTokens, type ParseResult } from '../sql/parse.js';
import { Denial, RewriteContext } from '../rewrite/context.js';
import { checkInvariant } from '../rewrite/invariant.js';
import { paramsUsedOnce } from '../rewrite/safe-conjuncts.js';
import { setTypeNameParser } from '../rewrite/scoped.js';
import { rewriteStatement } from '../rewrite/statement.js';
import type { Catalog } from './catalog.js';
import { BoundedCache } from './decision-cache.js';
import { effectivePolicy, parseTypeName, type EffectivePolicy } from './effective.js';
import type { Rules } from './rules-schema.js';
import type {
  Judge,
  JudgeContext,
  Judgement,
  ParamCheck,
  SessionEffect,
  StaleName,
  Verdict,
  VerdictFacts,
} from './verdict.js';

setTypeNameParser(parseTypeName);

export interface PolicyJudgeOptions {
  readonly searchPath: string;
  /** Entries per cache (exact text, and literal-normalised shapes). Default 10,000. */
  readonly cacheSize?: number;
  /** Characters of SQL (agent's and rewritten) per cache. Default 32 Mi. */
  readonly cacheChars?: number;
  /**
   * Which rules these are (Judge.rulesVersion): EXECUTE and FETCH of names prepared under others
   * are refused. The judge's own, never the caller's: the session state a statement is sent with
   * may be older than the rules that judge it. Default 0.
   */
  readonly rulesVersion?: number;
  /**
   * Texts estimated deeper than this are refused before parsing (sql/nesting.ts). Default
   * MAX_NESTING_ESTIMATE; the tests raise it to reach the parser's own failure behind it.
   */
  readonly maxNestingEstimate?: number;
  /**
   * The statement_timeout pgwarden pins (session.statementTimeoutMs; 0: none): an agent may set a
   * shorter one. Unknown (undefined): it may only go back to the pinned one.
   */
  readonly statementTimeoutMs?: number;
}

/** An entry's own text: the rewritten SQL, or its template's pieces. */
function entryChars(e: Entry): number {
  const v = e.verdict;
  let n = 256 + (v.kind === 'rewrite' ? v.sql.length : 0);
  if (e.pieces) for (const p of e.pieces) n += p.length;
  if (v.kind !== 'deny')
    for (const effect of v.effects ?? [])
      if (effect.source) n += effect.source.sql.length + effect.source.forwarded.length;
  return n;
}

/** What is cached: the verdict, and for a shape, a template to re-insert the literals into. */
export interface Entry {
  readonly verdict: Verdict;
  readonly fingerprint: string;
  /** For literal-shape entries of rewrites: the rewritten SQL split around literal markers. */
  readonly pieces?: readonly string[];
  /** For each marker in the template, in text order, the index of the agent's literal it holds. */
  readonly order?: readonly number[];
}

const MARKER_BASE = 1_000_000;

/**
 * Deepest parse tree judged (levels of objects and arrays in libpg-query's JSON). PostgreSQL's
 * own regression suite goes to 59; 1,000 allows about 250 nested subqueries (0.2 s to judge) or
 * a sum of 500 terms, and stops well before the stack overflows (about 2,000).
 */
const MAX_TREE_DEPTH = 1000;

/** What the agent reads when its statement could run the SQL parser out of stack. */
const TOO_DEEP_TO_PARSE =
  'the statement nests expressions or subqueries deeper than the SQL parser can read (a sum of thousands of terms, say): flatten it or split it';

function facts(ctx: RewriteContext | undefined, kinds: string[]): VerdictFacts {
  return {
    ruleIds: ctx ? [...ctx.ruleIds] : [],
    reasons: ctx ? [...ctx.reasons] : [],
    tables: ctx ? [...ctx.tables] : [],
    columns: ctx ? [...ctx.columns] : [],
    flags: ctx ? [...ctx.flags] : [],
    statementKinds: kinds,
    ...(ctx?.sessionDependent ? { usesSessionNames: true as const } : {}),
  };
}

function deny(
  f: VerdictFacts,
  message: string,
  reason: string,
  code: ErrorCode,
  extra: { ruleId?: string; flags?: string[]; hint?: string; staleName?: StaleName } = {},
): Verdict {
  return {
    ...f,
    reasons: [...f.reasons, reason],
    ruleIds: extra.ruleId ? [...f.ruleIds, extra.ruleId] : f.ruleIds,
    flags: [...f.flags, ...(extra.flags ?? [])],
    kind: 'deny',
    code,
    message,
    ...(extra.hint ? { hint: extra.hint } : {}),
    ...(extra.staleName ? { staleName: extra.staleName } : {}),
  };
}

/**
 * Each PREPARE's and DECLARE's own text, and the text pgwarden forwards for it: after a reload the
 * session judges that text again, and keeps using the name if the rules in force forward the same.
 * Parser locations count UTF-8 bytes.
 */
function withSources(
  effects: SessionEffect[],
  sql: string,
  parsed: ParseResult,
  stmts: readonly Node[],
  before: string,
  protocol: 'simple' | 'extended',
): SessionEffect[] {
  if (!effects.some((e) => e.prepare !== undefined || e.declareCursor !== undefined)) return effects;
  const bytes = Buffer.from(sql, 'utf8');
  // Its own statement's change, not the message's: one left as it was is forwarded as written.
  const was = JSON.parse(before) as Node[];
  return effects.map((e) => {
    if (e.prepare === undefined && e.declareCursor === undefined) return e;
    const raw = parsed.stmts[e.statement];
    const start = raw?.stmt_location ?? 0;
    const own = bytes.toString('utf8', start, raw?.stmt_len ? start + raw.stmt_len : bytes.length).trim();
    const stmt = stmts[e.statement]!;
    const changed = JSON.stringify(stmt) !== JSON.stringify(was[e.statement]);
    const forwarded = changed ? deparseStatements([stmt]) : own;
    return { ...e, source: { sql: own, forwarded, protocol } };
  });
}

/**
 * The tree's constants by location, if every literal the shape lexer found is one of them at its
 * place; else undefined.
 */
function constsAtLiterals(stmts: readonly Node[], lk: LiteralShape): Map<number, Node[]> | undefined {
  const consts = new Map<number, Node[]>();
  constsByLocation(stmts, consts);
  return lk.spans.every(([start]) => (consts.get(start)?.length ?? 0) > 0) ? consts : undefined;
}

/**
 * Collects every A_Const node, by parser location, so literals can be swapped for markers. Only the
 * agent's literals (and the rewrite's copies of them) carry a location: everything pgwarden parses
 * from the rules (masks, type names, catalog views) has its locations stripped, so none of it can
 * share a literal's place and be filled with the next statement's value.
 */
function constsByLocation(node: unknown, out: Map<number, Node[]>): void {
  if (Array.isArray(node)) {
    for (const n of node) constsByLocation(n, out);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const c = (node as { A_Const?: { location?: number } }).A_Const;
  if (c && typeof c.location === 'number') {
    const list = out.get(c.location) ?? [];
    list.push(node as Node);
    out.set(c.location, list);
  }
  for (const v of Object.values(node)) constsByLocation(v, out);
}

/**
 * The tenant parameter's check reads the Bind value as the tenant column's type, but the server
 * types $n once, from its first use in the statement: a second use elsewhere (`($1::"char")::text`
 * before it, say) can make the server read the same bytes as another type and write something
 * else. So a checked $n may appear only where it was checked, in the tree as the agent wrote it
 * (pgwarden's rewrite copies conditions, never the tenant value).
 * https://www.postgresql.org/docs/current/sql-prepare.html
 */
function reusedTenantParam(tree: unknown, ctx: RewriteContext): ParamCheck | undefined {
  const checked = new Map(ctx.paramChecks.map((c) => [c.index, c]));
  let found: ParamCheck | undefined;
  const walk = (node: unknown): void => {
    if (found || node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const n of node) walk(n);
      return;
    }
    const ref = (node as { ParamRef?: { number?: number; location?: number } }).ParamRef;
    if (ref) {
      const check = checked.get(ref.number ?? 0);
      if (check && !ctx.checkedParamLocations.has(ref.location ?? -1)) found = check;
      return;
    }
    for (const v of Object.values(node)) walk(v);
  };
  walk(tree);
  return found;
}

/**
 * A shape is learnt only from a statement whose literals PostgreSQL's scanner reads exactly as
 * the shape lexer does: then every statement of that key is read alike (see agreesWithScanner),
 * whatever lexer bug there may be. Runs once per new shape, on the judging path.
 */
function scannerAgrees(sql: string, shape: LiteralShape): boolean {
  try {
    return agreesWithScanner(shape, scanTokens(sql));
  } catch {
    return false;
  }
}

/**
 * The policy engine behind the proxy's seam. Pure given (rules, catalog, identity, session): each
 * statement is parsed with PostgreSQL's grammar, every relation resolved and scoped, every
 * function, type and column checked, the result deparsed, re-parsed and checked again.
 */
function elapsedMicros(start: number): number {
  return Math.round((performance.now() - start) * 1000);
}

/**
 * What one judgement adds to the decision caches, so another judge with the same rules (the
 * proxy's, for a statement judged on the judge thread) can remember it too. Keys are the caches'
 * own: they depend only on the rules, the identity's tenant and roles, and the text.
 */
export interface Lesson {
  readonly exact?: { readonly key: string; readonly entry: Entry };
  readonly shape?: { readonly key: string; readonly entry: Entry };
}

export interface PolicyJudge extends Judge {
  lookup(sql: string, ctx: JudgeContext, exactOnly?: boolean): Judgement | undefined;
  /** judge(), and what it added to the caches. */
  judgeAndTeach(sql: string, ctx: JudgeContext): { judgement: Judgement; lesson: Lesson };
  /** Remembers what a judge with the same rules learnt. */
  learn(lesson: Lesson): void;
}

export function createPolicyJudge(rules: Rules, catalog: Catalog, opts: PolicyJudgeOptions): PolicyJudge {
  const size = opts.cacheSize ?? 10_000;
  const chars = opts.cacheChars ?? 32 * 1024 * 1024;
  const exact = new BoundedCache<Entry>(size, chars, entryChars);
  const shapes = new BoundedCache<Entry>(size, chars, entryChars);
  const policies = new Map<string, EffectivePolicy>();
  const roleNames = Object.keys(rules.roles ?? {});

  const policyFor = (roles: readonly string[]): { key: string; policy: EffectivePolicy } => {
    const key = roleNames.filter((r) => roles.includes(r)).join(',');
    let policy = policies.get(key);
    if (!policy) {
      policy = effectivePolicy(rules, catalog, roles);
      policies.set(key, policy);
    }
    return { key, policy };
  };

  // A session's identity is one frozen object for its whole life: work out its policy and cache
  // prefix once, not on every statement.
  const scopes = new WeakMap<JudgeContext['identity'], { prefix: string; policy: EffectivePolicy }>();
  const scopeFor = (identity: JudgeContext['identity']): { prefix: string; policy: EffectivePolicy } => {
    let scope = scopes.get(identity);
    if (!scope) {
      const { key, policy } = policyFor(identity.roles);
      scope = { prefix: `${identity.tenant}\u0001${key}\u0001`, policy };
      scopes.set(identity, scope);
    }
    return scope;
  };

  type Evaluated = { entry: Entry; cacheable: boolean; shape?: Entry };

  /** Refused before parsing, where parsing could run the parser out of stack (sql/nesting.ts). */
  function tooDeepToParse(sql: string): boolean {
    if (sql.length < NESTING_CHECK_CHARS) return false;
    try {
      return nestingEstimate(sql, scanTokens(sql)) > (opts.maxNestingEstimate ?? MAX_NESTING_ESTIMATE);
    } catch (err) {
      if (err instanceof ParserLostError) throw err;
      // The parser reports what the scanner could not read.
      return false;
    }
  }

  /** Refused, never remembered: the statement is not at fault once the parser is gone. */
  function parserLost(err: ParserLostError): Evaluated {
    const verdict = err.now
      ? deny(facts(undefined, []), TOO_DEEP_TO_PARSE, 'parser_stack_exhausted', 'PGW_TOO_COMPLEX')
      : deny(
          facts(undefined, []),
          'internal pgwarden error: its SQL parser failed on an earlier statement and is being replaced; the statement was denied, retry it',
          'parser_lost',
          'PGW_INTERNAL',
        );
    return { entry: { verdict, fingerprint: '' }, cacheable: false };
  }

  function evaluate(sql: string, jc: JudgeContext, policy: EffectivePolicy): Evaluated {
    const kinds: string[] = [];
    if (tooDeepToParse(sql)) {
      const verdict = deny(facts(undefined, []), TOO_DEEP_TO_PARSE, 'too_deep', 'PGW_TOO_COMPLEX');
      return { entry: { verdict, fingerprint: '' }, cacheable: true };
    }
    let parsed;
    try {
      parsed = parseSql(sql);
    } catch (err) {
      if (err instanceof ParserLostError) return parserLost(err);
      const verdict = deny(
        facts(undefined, []),
        `syntax error: ${(err as Error).message}`,
        'syntax_error',
        'PGW_SYNTAX_ERROR',
      );
      return { entry: { verdict, fingerprint: '' }, cacheable: true };
    }
    const stmts = parsed.stmts.map((s) => s.stmt as Node);
    // Judging is synchronous: a message of thousands of statements would hold up every session.
    // Parsing alone is bounded by limits.maxQueryBytes; nothing more is done for such a message.
    const max = jc.maxStatements;
    if (max !== undefined && stmts.length > max) {
      const verdict = deny(
        facts(undefined, []),
        `the query holds ${stmts.length} statements; pgwarden judges at most ${max} in one message: send them in smaller batches`,
        'too_many_statements',
        'PGW_MESSAGE_TOO_LARGE',
      );
      return { entry: { verdict, fingerprint: '' }, cacheable: false };
    }
    // Rewriting and checking walk the tree recursively, some of it in time that grows with the
    // square of the depth: subqueries nested 1,000 deep took 4.5 s to judge, and a sum of 1,000
    // terms overflowed the stack. Real SQL stays far below this.
    if (stmts.some((s) => deeperThan(s, MAX_TREE_DEPTH))) {
      const verdict = deny(
        facts(undefined, []),
        `the statement nests expressions or subqueries deeper than pgwarden judges (${MAX_TREE_DEPTH} levels of its parse tree): flatten it or split it`,
        'too_deep',
        'PGW_TOO_COMPLEX',
      );
      return { entry: { verdict, fingerprint: '' }, cacheable: true };
    }
    for (const s of stmts) kinds.push(Object.keys(s)[0] ?? 'unknown');
    const fp = fingerprint(sql);
    const tenant = jc.identity.tenant;
    if (!tenant) {
      const verdict = deny(
        facts(undefined, kinds),
        'your token carries no tenant, so pgwarden cannot scope any query',
        'no_tenant',
        'PGW_POLICY_DENIED',
      );
      return { entry: { verdict, fingerprint: fp }, cacheable: true };
    }
    if (stmts.length === 0)
      return {
        entry: { verdict: { ...facts(undefined, kinds), kind: 'allow' }, fingerprint: fp },
        cacheable: true,
      };
    const ctx = new RewriteContext(policy, catalog, tenant, jc.protocol, jc.session);
    ctx.rulesVersion = opts.rulesVersion ?? 0;
    ctx.pinnedSearchPath = opts.searchPath;
    ctx.pinnedStatementTimeoutMs = opts.statementTimeoutMs;
    ctx.paramsUsedOnce = paramsUsedOnce(stmts);
    const lk = literalShape(sql);
    const before = JSON.stringify(stmts);
    try {
      for (let i = 0; i < stmts.length; i++) {
        ctx.statementIndex = i;
        rewriteStatement(stmts[i]!, ctx);
      }
    } catch (err) {
      if (!(err instanceof Denial)) throw err;
      const verdict = deny(
        facts(ctx, kinds),
        err.message,
        err.reason,
        err.opts.code ?? 'PGW_POLICY_DENIED',
        err.opts,
      );
      return {
        entry: { verdict, fingerprint: fp },
        cacheable: !ctx.sessionDependent,
        // A refusal is a verdict too: learnt as a shape only on the same terms (below).
        ...(ctx.literalSensitive || ctx.sessionDependent || !lk || !constsAtLiterals(stmts, lk)
          ? {}
          : { shape: { verdict, fingerprint: fp } }),
      };
    }
    const reused = ctx.paramChecks.length > 0 ? reusedTenantParam(JSON.parse(before), ctx) : undefined;
    if (reused !== undefined) {
      const verdict = deny(
        facts(ctx, kinds),
        `$${reused.index} is the tenant value (${reused.message}) and is also used elsewhere in the statement; PostgreSQL types a parameter once, from its first use, so the value written could differ from the one pgwarden checks: pass your tenant in a parameter of its own, and use a separate parameter (or a literal) for the other use`,
        'tenant_param_reused',
        'PGW_POLICY_DENIED',
      );
      return { entry: { verdict, fingerprint: fp }, cacheable: !ctx.sessionDependent };
    }
    const changed = JSON.stringify(stmts) !== before;
    const base = facts(ctx, kinds);
    const extras = {
      ...(ctx.paramChecks.length ? { paramChecks: ctx.paramChecks } : {}),
      ...(ctx.effects.length
        ? { effects: withSources(ctx.effects, sql, parsed, stmts, before, jc.protocol) }
        : {}),
      ...(ctx.keyRefusals.size ? { refusals: [...ctx.keyRefusals] } : {}),
    };
    let out = sql;
    let check = stmts;
    if (changed) {
      // Limits of the SQL printer (pgsql-deparser), not of the agent's SQL: refused with a message
      // that says so, where a bare internal error left agents nothing to act on.
      const printerLimit = (why: string, reason: string): Evaluated => ({
        entry: {
          verdict: deny(
            base,
            `pgwarden could not rewrite this statement for your tenant (${why}); it was not run: write that part of it another way`,
            reason,
            'PGW_INTERNAL',
          ),
          fingerprint: fp,
        },
        cacheable: true,
      });
      try {
        out = deparseStatements(stmts);
      } catch (err) {
        return printerLimit(
          `its SQL printer does not handle ${/node type: (\w+)/.exec((err as Error).message)?.[1] ?? 'a construct in it'}`,
          `rewrite_unprintable: ${(err as Error).message}`,
        );
      }
      try {
        check = parseSql(out).stmts.map((s) => s.stmt as Node);
      } catch (err) {
        if (err instanceof ParserLostError) throw err;
        return printerLimit(
          `its rewrite did not parse: ${(err as Error).message}`,
          `rewrite_unparsable: ${(err as Error).message}`,
        );
      }
      // What is forwarded must read as exactly the tree pgwarden judged and rewrote. The printer
      // wrote some of the agent's strings unquoted (EXTRACT's field, opclass options, SET values):
      // an agent's `EXTRACT('epoch from x) ...; DO $$...$$ --' FROM x)` printed as SQL of its own,
      // which ran as pgwarden's service role (red team, round 34, critical). The invariant checks
      // how tables are read; this checks that nothing else changed on the way through the printer.
      if (!sameTree(check, stmts))
        return printerLimit(
          'its SQL printer would not print it back exactly',
          `rewrite_unfaithful: ${firstDifference(check, stmts)}`,
        );
    }
    const violation =
      check.length === stmts.length
        ? checkInvariant(check, policy, catalog, tenant, ctx.paramChecks, ctx.paramsUsedOnce)
        : 'statement count changed';
    if (violation !== undefined) {
      const verdict = deny(
        base,
        'pgwarden could not prove its rewrite keeps you in your tenant; the statement was denied',
        `invariant_violation: ${violation}`,
        'PGW_INTERNAL',
      );
      return { entry: { verdict, fingerprint: fp }, cacheable: true };
    }
    const verdict: Verdict = changed
      ? { ...base, ...extras, kind: 'rewrite', sql: out }
      : { ...base, ...extras, kind: 'allow' };
    const entry: Entry = { verdict, fingerprint: fp };
    const cacheable = !ctx.sessionDependent;
    if (!lk || ctx.literalSensitive || ctx.sessionDependent || ctx.paramChecks.length > 0)
      return { entry, cacheable };
    // A shape stands for every statement that differs only in its literals, so each literal must
    // be a value in the tree (a constant at its place), never part of the statement's structure:
    // the string after UESCAPE decides which name a U&"..." identifier spells, and a statement
    // that named its own CTE taught a shape that served, unjudged, the same text naming
    // public.customers (red team, round 36, critical).
    const consts = constsAtLiterals(stmts, lk);
    if (!consts) return { entry, cacheable };
    if (!changed) return { entry, cacheable, shape: entry };
    // Swap the agent's literals for markers and deparse again: the template for this shape. The
    // literals are looked up in the rewritten tree, where the rewrite may have copied one (a
    // condition repeated outside a guard or into a fence): every copy gets the same marker, so
    // each receives the next statement's value. A location holding anything but copies of one
    // literal (a rules' constant that happens to share it) gets no template.
    const marked: Node[][] = [];
    for (const [start] of lk.spans) {
      const at = consts.get(start);
      if (!at?.length || at.some((n) => !sameTree(n, at[0]))) return { entry, cacheable };
      marked.push(at);
    }
    marked.forEach((copies, i) =>
      copies.forEach((n) => {
        delete (n as Record<string, unknown>).A_Const;
        (n as Record<string, unknown>).ParamRef = { number: MARKER_BASE + i };
      }),
    );
    const template = deparseStatements(stmts);
    const pieces = template.split(/\$(1\d{6})\b/);
    const order = pieces.filter((_, i) => i % 2 === 1).map((m) => Number(m) - MARKER_BASE);
    const occurrences = marked.reduce((n, copies) => n + copies.length, 0);
    if (order.length !== occurrences || marked.some((_, i) => !order.includes(i)))
      return { entry, cacheable };
    const shape: Entry = { verdict, fingerprint: fp, pieces: pieces.filter((_, i) => i % 2 === 0), order };
    // The template must give back this statement's own rewrite from its own literals: then each
    // marker stands where the printed SQL holds a whole literal token, and another statement's
    // token of the same kind stays one literal there. Where the printer writes a literal in another
    // form (EXTRACT's field as a bare word, an option's value between quotes it adds itself), an
    // agent's token spliced in would be read differently from what was judged: no template.
    const again = fromShape(shape, sql, lk.spans);
    if (again.kind !== 'rewrite' || again.sql !== out) return { entry, cacheable };
    return { entry, cacheable, shape };
  }

  function fromShape(shape: Entry, sql: string, spans: readonly (readonly [number, number])[]): Verdict {
    if (!shape.pieces || shape.verdict.kind !== 'rewrite') return shape.verdict;
    let out = shape.pieces[0] ?? '';
    (shape.order ?? []).forEach((literal, i) => {
      const [s, e] = spans[literal] as readonly [number, number];
      out += sql.slice(s, e) + (shape.pieces?.[i + 1] ?? '');
    });
    return { ...shape.verdict, sql: out };
  }

  /** The cached judgement of this text, or undefined (with the shape key to store one under). */
  function cached(
    sql: string,
    jc: JudgeContext,
    start: number,
    exactOnly = false,
  ):
    | { hit: Judgement; shapeKey?: undefined; shape?: undefined }
    | { hit?: undefined; shapeKey: string | undefined; shape: LiteralShape | undefined } {
    const { prefix } = scopeFor(jc.identity);
    const hit = exact.get(prefix + sql);
    if (hit)
      return {
        hit: {
          verdict: hit.verdict,
          fingerprint: hit.fingerprint,
          cached: true,
          judgeMicros: elapsedMicros(start),
        },
      };
    if (exactOnly) return { shapeKey: undefined, shape: undefined };
    const lk = literalShape(sql);
    const shapeKey = lk ? prefix + lk.key : undefined;
    const shapeHit = shapeKey !== undefined && lk ? shapes.get(shapeKey) : undefined;
    if (shapeHit && lk) {
      return {
        hit: {
          verdict: fromShape(shapeHit, sql, lk.spans),
          fingerprint: shapeHit.fingerprint,
          cached: true,
          judgeMicros: elapsedMicros(start),
        },
      };
    }
    return { shapeKey, shape: lk };
  }

  function judgeAndTeach(sql: string, jc: JudgeContext): { judgement: Judgement; lesson: Lesson } {
    const start = performance.now();
    try {
      const c = cached(sql, jc, start);
      if (c.hit) return { judgement: c.hit, lesson: {} };
      const key = scopeFor(jc.identity).prefix + sql;
      const r = evaluate(sql, jc, scopeFor(jc.identity).policy);
      const lesson: { exact?: Lesson['exact']; shape?: Lesson['shape'] } = {};
      if (r.cacheable) {
        exact.set(key, r.entry);
        lesson.exact = { key, entry: r.entry };
      }
      if (r.shape && c.shapeKey !== undefined && c.shape && scannerAgrees(sql, c.shape)) {
        shapes.set(c.shapeKey, r.shape);
        lesson.shape = { key: c.shapeKey, entry: r.shape };
      }
      const judgement = {
        verdict: r.entry.verdict,
        fingerprint: r.entry.fingerprint,
        cached: false,
        judgeMicros: elapsedMicros(start),
      };
      return { judgement, lesson };
    } catch (err) {
      const verdict =
        err instanceof ParserLostError
          ? parserLost(err).entry.verdict
          : deny(
              facts(undefined, []),
              'internal pgwarden error; the statement was denied',
              `internal: ${(err as Error).message}`,
              'PGW_INTERNAL',
            );
      return {
        judgement: { verdict, fingerprint: '', cached: false, judgeMicros: elapsedMicros(start) },
        lesson: {},
      };
    }
  }

  const named = new Set([...Object.keys(rules.tables), ...(rules.introspection ?? [])]);
  return {
    namesRelation: (qname) => named.has(qname),
    judge: (sql, jc) => judgeAndTeach(sql, jc).judgement,
    judgeAndTeach,
    lookup(sql, jc, exactOnly = false) {
      try {
        return cached(sql, jc, performance.now(), exactOnly).hit;
      } catch {
        // judge() reports the error as a verdict.
        return undefined;
      }
    },
    learn(lesson) {
      if (lesson.exact) exact.set(lesson.exact.key, lesson.exact.entry);
      if (lesson.shape) shapes.set(lesson.shape.key, lesson.shape.entry);
    },
  };
}
