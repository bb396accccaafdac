import type { Catalog } from '../policy/catalog.js';
import type { EffectivePolicy, TablePolicy } from '../policy/effective.js';
import { tenantFitsType } from '../policy/tenant-id.js';
import type { ParamCheck, SessionEffect, SessionPolicyState, StaleName } from '../policy/verdict.js';
import type { ParamUse } from './safe-conjuncts.js';

/** A refusal raised anywhere in the analysis; the engine turns it into a deny verdict. */
export class Denial extends Error {
  constructor(
    message: string,
    readonly reason: string,
    readonly opts: {
      ruleId?: string;
      flags?: string[];
      hint?: string;
      code?:
        | 'PGW_POLICY_DENIED'
        | 'PGW_FEATURE_REFUSED'
        | 'PGW_RULES_CHANGED'
        | 'PGW_UNKNOWN_STATEMENT'
        | 'PGW_UNKNOWN_CURSOR';
      staleName?: StaleName;
    } = {},
  ) {
    super(message);
    this.name = 'Denial';
  }
}

/** A base relation being written (UPDATE/DELETE/INSERT/MERGE target): its raw columns are in scope. */
export interface WriteTarget {
  readonly policy: TablePolicy;
  /** Names by which expressions refer to the target row (alias or table name; old/new in RETURNING). */
  readonly refnames: ReadonlySet<string>;
}

/** CTE names visible at a point of the query, innermost last. */
export interface Scope {
  readonly ctes: ReadonlySet<string>;
  readonly parent: Scope | undefined;
  /** The range variables of one FROM list, by name, visible here (field notation: expr.ts). */
  readonly relations?: ReadonlyMap<string, RangeVariable>;
}

/** What a range variable's name stands for in an expression. */
export interface RangeVariable {
  /**
   * Its whole row is a row (a table's, a subquery's, a WITH query's). Not so for a function in
   * FROM, whose whole row is its value when it returns one (`unnest(...) q`: q is that value), nor
   * for a name whose item pgwarden cannot tell (a LATERAL sibling, from its FROM list).
   */
  readonly row: boolean;
  /** Its columns, when they are the rules' or the catalog's own (a table's, a catalog relation's). */
  readonly columns?: ReadonlySet<string>;
}

/** The innermost range variable of this name in scope. */
export function rangeVariable(scope: Scope | undefined, name: string): RangeVariable | undefined {
  for (let s = scope; s; s = s.parent) {
    const r = s.relations?.get(name);
    if (r) return r;
  }
  return undefined;
}

export function cteVisible(scope: Scope | undefined, name: string): boolean {
  for (let s = scope; s; s = s.parent) if (s.ctes.has(name)) return true;
  return false;
}

/** Everything one judgement collects; one per statement string. */
export class RewriteContext {
  readonly tables = new Set<string>();
  readonly columns = new Set<string>();
  readonly reasons = new Set<string>();
  readonly ruleIds = new Set<string>();
  readonly flags = new Set<string>();
  readonly paramChecks: ParamCheck[] = [];
  /** The refusals the rewrite's parent key guards can raise (parentKeyMessage). */
  readonly keyRefusals = new Set<string>();
  /**
   * Where (parser location) each checked tenant parameter ($n) stands in the agent's text: the
   * engine refuses the statement if the same $n stands anywhere else (tenant_param_reused).
   */
  readonly checkedParamLocations = new Set<number>();
  /** Session state the message changes, in statement order. */
  readonly effects: SessionEffect[] = [];
  /** 0-based index of the statement being judged in the message; the engine sets it. */
  statementIndex = 0;
  /** Set when the verdict depends on a literal's value, so it must not be reused for other literals. */
  literalSensitive = false;
  /** Set when the verdict depends on session state (EXECUTE, FETCH), so it must not be cached at all. */
  sessionDependent = false;
  /** alias or table name -> table, for every table read or written in the statement. */
  readonly refs = new Map<string, TablePolicy>();
  /**
   * SELECT bodies nothing encloses (a statement's own query, and the arms of its set operation):
   * no outer query can push a condition into them, so inline-tenant.ts may read a table there.
   */
  readonly topLevel = new Set<object>();
  /**
   * Names under which a tenant- or parent-scoped table is referenced anywhere in the statement (a
   * write target's old / new / excluded too): their system columns are refused.
   */
  readonly scopedRefnames = new Set<string>();
  /** "schema.table" of scoped reads written without an alias (their 3-part column refs are shortened). */
  readonly qualifiedReads = new Set<string>();
  writeTarget: WriteTarget | undefined;
  /** Which parameters stand once in the agent's SQL (safe-conjuncts.ts); the engine sets it. */
  paramsUsedOnce: ParamUse = () => false;
  /** Guarded catalog function calls and reg* casts so far (oid-guards.ts caps them). */
  guardedCalls = 0;
  /** The row limit of the tables a top-level SELECT reads (smallest wins). */
  rowLimit: number | undefined;

  /** The version of the rules judging (PolicyJudgeOptions.rulesVersion). */
  rulesVersion = 0;
  /** The search_path pgwarden pins (PolicyJudgeOptions.searchPath), as the server reports it. */
  pinnedSearchPath: string | undefined;
  /** The statement_timeout pgwarden pins (PolicyJudgeOptions.statementTimeoutMs). */
  pinnedStatementTimeoutMs: number | undefined;

  constructor(
    readonly policy: EffectivePolicy,
    readonly catalog: Catalog,
    readonly tenant: string,
    readonly protocol: 'simple' | 'extended',
    readonly session: SessionPolicyState,
  ) {}

  touch(t: TablePolicy): void {
    const scoped = t.tenantColumn ?? t.parent?.policy.tenantColumn;
    if (scoped && !tenantFitsType(this.tenant, scoped.type))
      throw new Denial(
        `your tenant id is not a valid ${scoped.type} for ${t.qname}; ask the data owner to check the token's tenant claim`,
        'tenant_type_mismatch',
        { ruleId: `tables.${t.qname}` },
      );
    this.tables.add(t.qname);
    for (const id of t.ruleIds) this.ruleIds.add(id);
    if (t.rowLimit !== undefined) this.rowLimit = Math.min(this.rowLimit ?? Infinity, t.rowLimit);
  }

  /** Names of agent-usable columns of a table, for messages that say what the agent may use instead. */
  usableColumns(t: TablePolicy): string {
    return t.columns
      .filter((c) => !t.hidden.has(c.name))
      .map((c) => c.name)
      .join(', ');
  }

  /**
   * Schemas a qualified type, collation, text search configuration or guarded lookup may name:
   * pg_catalog, information_schema, the pinned search path (usable schemas only) and the listed
   * tables' schemas. Any other, existing or not, answers as a missing one: for a schema
   * pgwarden's role may not use the server says "permission denied", telling that it exists
   * (red team, rounds 15 and 16).
   */
  knownSchemas(): ReadonlySet<string> {
    this.schemas ??= new Set([
      'pg_catalog',
      'information_schema',
      ...this.catalog.searchPath,
      ...[...this.policy.tables.values()].map((t) => t.schema),
    ]);
    return this.schemas;
  }

  private schemas: ReadonlySet<string> | undefined;

  listedTables(): string {
    return [...this.policy.tables.keys()].sort().join(', ');
  }
}
