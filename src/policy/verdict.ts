import type { ErrorCode } from '../errors/registry.js';
import type { Identity } from '../identity/identity.js';

/** What the policy engine reports alongside any verdict; it goes to the decision record. */
export interface VerdictFacts {
  /** Ids of the rules that decided, e.g. "tables.public.orders" or "default.read-only". */
  readonly ruleIds: readonly string[];
  /** Stable reason codes, e.g. "table_not_listed", "tenant_filter_added". */
  readonly reasons: readonly string[];
  /** Relations touched, schema-qualified. */
  readonly tables: readonly string[];
  /** Columns touched, as "schema.table.column". */
  readonly columns: readonly string[];
  /** Notable facts for responders, e.g. "cross_tenant_attempt". */
  readonly flags: readonly string[];
  /** Top-level statement kinds, e.g. ["SelectStmt"]. */
  readonly statementKinds: readonly string[];
  /**
   * The verdict read the session's prepared statements or cursors (EXECUTE p, FETCH c): it holds
   * only while they are what they were (SessionNames.version).
   */
  readonly usesSessionNames?: true;
}

/**
 * A parameter whose value is only known at Bind: the proxy checks it before forwarding the Bind.
 * Used, for example, when an INSERT puts $2 in the tenant column.
 */
export interface ParamCheck {
  /** 1-based, as in $1. */
  readonly index: number;
  readonly equals: string;
  readonly type: 'text' | 'int4' | 'int8' | 'uuid';
  readonly message: string;
}

/**
 * A change to session state that one statement of the message makes when the server runs it; the
 * proxy mirrors it (and undoes it if the server reports that the statement failed or was skipped).
 */
export interface SessionEffect {
  /** 0-based index of the statement in the message (a simple Query may carry several). */
  readonly statement: number;
  readonly prepare?: string;
  readonly deallocate?: string | { all: true };
  readonly declareCursor?: string;
  /** DECLARE ... WITH HOLD: the cursor outlives the transaction's COMMIT. */
  readonly hold?: true;
  /** For a PREPARE or DECLARE: its own text, so it can be judged again after a reload. */
  readonly source?: StatementSource;
  /** CLOSE name / CLOSE ALL: drops cursors, and protocol-level portals of that name too. */
  readonly closeCursor?: string | { all: true };
  /**
   * ROLLBACK TO SAVEPOINT: answered with the tag of a ROLLBACK, but the transaction goes on, and
   * so do its cursors and portals made before the savepoint.
   */
  readonly rollbackTo?: true;
}

/** A PREPARE or DECLARE as the agent wrote it, and as pgwarden forwarded it. */
export interface StatementSource {
  readonly sql: string;
  readonly forwarded: string;
  readonly protocol: 'simple' | 'extended';
}

/** A prepared statement or cursor judged under rules since replaced (PGW_RULES_CHANGED). */
export interface StaleName {
  readonly kind: 'prepared' | 'cursor';
  readonly name: string;
}

export type Verdict =
  | (VerdictFacts & {
      readonly kind: 'allow';
      readonly paramChecks?: readonly ParamCheck[];
      readonly effects?: readonly SessionEffect[];
    })
  | (VerdictFacts & {
      readonly kind: 'rewrite';
      /** The SQL to forward instead of the agent's. */
      readonly sql: string;
      readonly paramChecks?: readonly ParamCheck[];
      /**
       * Refusals pgwarden's own checks in `sql` raise in the server (a parent key outside the
       * tenant), as the agent should read them.
       */
      readonly refusals?: readonly string[];
      readonly effects?: readonly SessionEffect[];
    })
  | (VerdictFacts & {
      readonly kind: 'deny';
      readonly code: ErrorCode;
      /** What the agent sees: what was refused and what it may do instead. */
      readonly message: string;
      readonly hint?: string;
      /** The name whose PREPARE or DECLARE the session may judge again (StatementJudging). */
      readonly staleName?: StaleName;
    });

/** Session state the policy engine may read (never write). */
export interface SessionPolicyState {
  /**
   * SQL-level prepared statements (PREPARE) pgwarden judged in this session, each with the
   * version of the rules it was judged under (Judge.rulesVersion).
   */
  readonly preparedStatements: ReadonlyMap<string, number>;
  /**
   * Cursors (DECLARE) pgwarden judged in this session, with their rules' version. A name judged
   * under other rules than the judge's may no longer be used: it runs the SQL those allowed.
   */
  readonly cursors: ReadonlyMap<string, number>;
  /**
   * Named protocol-level portals (Bind), with the rules version of their statement's judgement:
   * FETCH and MOVE reach a portal as they reach a cursor (asyncpg's Cursor.forward is a MOVE).
   */
  readonly portals: ReadonlyMap<string, number>;
}

/** The state of a session that has prepared nothing yet. */
export function freshSessionState(): SessionPolicyState {
  return { preparedStatements: new Map(), cursors: new Map(), portals: new Map() };
}

export interface JudgeContext {
  readonly identity: Identity;
  readonly protocol: 'simple' | 'extended';
  readonly session: SessionPolicyState;
  /**
   * Most statements one query string may hold (limits.maxStatementsPerQuery); more are refused
   * before any of them is judged. Unset: no limit (the CLI's explain and rules test).
   */
  readonly maxStatements?: number;
}

export interface Judgement {
  readonly verdict: Verdict;
  /** libpg-query fingerprint of the statement shape, or "" when it did not parse. */
  readonly fingerprint: string;
  /** Microseconds spent judging. */
  readonly judgeMicros: number;
  readonly cached: boolean;
}

/**
 * The seam between proxy and policy: one query string (a whole simple-protocol Query message, or
 * the text of one Parse message) in, one verdict out. A multi-statement string is allowed only if
 * every statement is; the verdict then covers the whole string. Must not throw: a bug is a deny
 * with PGW_INTERNAL. Synchronous, so judging adds no event-loop turns (judgeOffThread aside).
 */
export interface Judge {
  judge(sql: string, ctx: JudgeContext): Judgement;
  /**
   * Which rules are in force: changes with every reload (ReloadableJudge), so a session can tell
   * which of its prepared statements were judged under rules since replaced. Absent: never changes.
   */
  readonly rulesVersion?: number;
  /**
   * Whether agents may see this relation's name ("schema.table") in the server's errors: the rules
   * name it (a table or an introspection relation).
   */
  namesRelation(qname: string): boolean;
  /**
   * The judgement from the decision caches alone, or undefined. `exactOnly`: only a statement seen
   * with this very text; finding one of the same shape means lexing the text, which costs per
   * byte (3 ms for 120 KB).
   */
  lookup?(sql: string, ctx: JudgeContext, exactOnly?: boolean): Judgement | undefined;
  /**
   * Judges on another thread, with the same rules, and remembers the judgement here: for
   * statements not in the caches, whose judging would otherwise hold the proxy's event loop and
   * every other session (limits.judgeThread). `stillWanted` false (the session ended while the
   * statement waited): it is not judged, and the answer is a refusal nobody reads. Never rejects.
   * Absent: every statement is judged synchronously.
   */
  judgeOffThread?(sql: string, ctx: JudgeContext, stillWanted?: () => boolean): Promise<Judgement>;
}
