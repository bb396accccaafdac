import type { ErrorCode } from '../../src/errors/registry.js';
import type { Rules } from '../../src/policy/rules-schema.js';
import type { Judge, Judgement, Verdict, VerdictFacts } from '../../src/policy/verdict.js';
import { literalShape } from '../../src/sql/literal-shape.js';
import { fingerprint, parseSql } from '../../src/sql/parse.js';

export const emptyFacts: VerdictFacts = {
  ruleIds: [],
  reasons: [],
  tables: [],
  columns: [],
  flags: [],
  statementKinds: [],
};

function deny(
  message: string,
  reason: string,
  facts: Partial<VerdictFacts> = {},
  code: ErrorCode = 'PGW_POLICY_DENIED',
): Verdict {
  return {
    ...emptyFacts,
    ...facts,
    kind: 'deny',
    code,
    message,
    reasons: [reason],
    ruleIds: ['default.read-only'],
  };
}

/** Transaction control is allowed: it changes no data and clients rely on it. Two-phase commit is not. */
const transactionControl = new Set([
  'TRANS_STMT_BEGIN',
  'TRANS_STMT_START',
  'TRANS_STMT_COMMIT',
  'TRANS_STMT_ROLLBACK',
  'TRANS_STMT_SAVEPOINT',
  'TRANS_STMT_RELEASE',
  'TRANS_STMT_ROLLBACK_TO',
]);

/** Node types that make a SELECT not read-only, wherever they appear. */
const writingNodes = new Set([
  'InsertStmt',
  'UpdateStmt',
  'DeleteStmt',
  'MergeStmt',
  'IntoClause',
  'LockingClause',
]);

/**
 * A deliberately simple judge for the proxy's own tests (the issue-2 strict default, kept after
 * the policy engine replaced it in production): a query is allowed only if every statement is a plain SELECT
 * whose relations are all listed in the rules. Names are resolved with the pinned search_path's
 * first schema when unqualified. Everything else is denied. The policy engine replaces this.
 */
export function createStrictDefaultJudge(rules: Rules, searchPath = 'public'): Judge {
  const listed = new Set(Object.keys(rules.tables));
  const defaultSchema = searchPath.split(',')[0]?.trim() ?? 'public';

  function verdictFor(sql: string): Verdict {
    let parsed;
    try {
      parsed = parseSql(sql);
    } catch (err) {
      return deny(`syntax error: ${(err as Error).message}`, 'syntax_error', {}, 'PGW_SYNTAX_ERROR');
    }
    if (parsed.stmts.length === 0) return { ...emptyFacts, kind: 'allow' };
    const tables = new Set<string>();
    const kinds: string[] = [];
    const cteNames = new Set<string>();
    for (const { stmt } of parsed.stmts) {
      const kind = Object.keys(stmt)[0] ?? 'unknown';
      kinds.push(kind);
      if (
        kind === 'TransactionStmt' &&
        transactionControl.has(String((stmt.TransactionStmt as { kind?: string }).kind))
      )
        continue;
      if (kind !== 'SelectStmt')
        return deny(`${kind} is not allowed: only read-only SELECT statements are`, 'statement_not_allowed', {
          statementKinds: kinds,
        });
      let problem: string | undefined;
      walk(stmt, (key, node) => {
        if (writingNodes.has(key)) problem ??= `${key} makes this statement not read-only`;
        if (key === 'CommonTableExpr') cteNames.add(String((node as { ctename?: string }).ctename));
        if (key === 'RangeVar') {
          const rv = node as { schemaname?: string; relname?: string };
          const name = `${rv.schemaname ?? defaultSchema}.${rv.relname}`;
          if (rv.schemaname === undefined && cteNames.has(String(rv.relname))) return;
          tables.add(name);
        }
      });
      if (problem) return deny(problem, 'not_read_only', { statementKinds: kinds });
    }
    for (const t of tables) {
      if (!listed.has(t))
        return deny(`relation ${t} is not available to agents`, 'table_not_listed', {
          tables: [...tables],
          statementKinds: kinds,
        });
    }
    return {
      ...emptyFacts,
      kind: 'allow',
      ruleIds: [...tables].map((t) => `tables.${t}`),
      reasons: ['read_only_listed_tables'],
      tables: [...tables],
      statementKinds: kinds,
    };
  }

  // The strict default's verdicts never depend on literal values, so statements that differ only
  // in literals (pgbench -M simple, ORMs without parameters) share one judgement.
  const cache = new Map<string, { verdict: Verdict; fingerprint: string }>();
  return {
    namesRelation: (qname) => listed.has(qname),
    judge(sql): Judgement {
      const start = performance.now();
      const key = literalShape(sql)?.key ?? sql;
      let entry = cache.get(key);
      const cached = entry !== undefined;
      if (!entry) {
        entry = { verdict: verdictFor(sql), fingerprint: fingerprint(sql) };
        if (cache.size >= 10_000) cache.clear();
        cache.set(key, entry);
      }
      return { ...entry, cached, judgeMicros: Math.round((performance.now() - start) * 1000) };
    },
  };
}

/** Visits every object node of a libpg-query AST as (node type key, node body). */
function walk(node: unknown, visit: (key: string, body: unknown) => void): void {
  if (Array.isArray(node)) {
    for (const n of node) walk(n, visit);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  for (const [k, v] of Object.entries(node)) {
    if (v !== null && typeof v === 'object' && /^[A-Z]/.test(k)) visit(k, v);
    walk(v, visit);
  }
}
