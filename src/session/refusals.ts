/**
 * Refusals the session makes itself, on top of the rules' verdicts: protocol names the server
 * would shorten, prepared-statement names already taken, declared parameter types that change what
 * a checked value means.
 */
import { headOf } from '../audit/clip.js';
import type { ErrorCode } from '../errors/registry.js';
import type { SessionEffect, Verdict } from '../policy/verdict.js';
import { declaredTypeProblem } from './param-types.js';

/** A deny verdict of the session's own: no rule, table or column decided it. */
export function refusal(code: ErrorCode, message: string): Verdict {
  return {
    kind: 'deny',
    code,
    message,
    ruleIds: [],
    reasons: [code.toLowerCase()],
    tables: [],
    columns: [],
    flags: [],
    statementKinds: [],
  };
}

/**
 * The server keeps only the first NAMEDATALEN - 1 = 63 bytes of a prepared statement or portal
 * name (its hash tables are keyed by them), so two longer names sharing those bytes are one
 * statement to the server and two to pgwarden's mirror. Longer protocol names are refused.
 * https://www.postgresql.org/docs/current/sql-syntax-lexical.html#SQL-SYNTAX-IDENTIFIERS
 */
export const MAX_NAME_BYTES = 63;

/** A UTF-16 unit is at most 3 UTF-8 bytes: only names over 21 units need their bytes counted. */
export function nameTooLong(name: string): boolean {
  return name.length * 3 > MAX_NAME_BYTES && Buffer.byteLength(name) > MAX_NAME_BYTES;
}

export function longNameRefusal(name: string): Verdict {
  return {
    ...refusal(
      'PGW_POLICY_DENIED',
      `the name "${headOf(name, 20)}..." is ${Buffer.byteLength(name)} bytes long; PostgreSQL keeps only the first ${MAX_NAME_BYTES} bytes of a statement or portal name, so pgwarden refuses longer ones: use a name of at most ${MAX_NAME_BYTES} bytes`,
    ),
    reasons: ['name_too_long'],
  };
}

export function nameTakenRefusal(name: string): Verdict {
  return refusal('PGW_POLICY_DENIED', `prepared statement "${name}" already exists`);
}

/**
 * Every PREPARE of the message must find its name free when it runs: free now (`taken` says
 * whether the session has it), or freed by an earlier DEALLOCATE of the same message, and not
 * taken by an earlier PREPARE of it. The server keeps the first of two statements with one name;
 * pgwarden must never believe the second, whose checks would be applied to a statement the server
 * does not run.
 */
export function refuseTakenName(v: Verdict, taken: (name: string) => boolean): Verdict {
  if (v.kind === 'deny' || !v.effects) return v;
  const name = firstTakenName(v.effects, taken);
  return name === undefined ? v : nameTakenRefusal(name);
}

function firstTakenName(
  effects: readonly SessionEffect[],
  taken: (name: string) => boolean,
): string | undefined {
  let added: Set<string> | undefined;
  let freed: Set<string> | undefined;
  let all = false;
  for (const e of effects) {
    if (typeof e.deallocate === 'string') {
      added?.delete(e.deallocate);
      (freed ??= new Set()).add(e.deallocate);
    } else if (e.deallocate) {
      added?.clear();
      all = true;
    }
    const name = e.prepare;
    if (name === undefined) continue;
    if (added?.has(name) || (!all && !freed?.has(name) && taken(name))) return name;
    (added ??= new Set()).add(name);
    freed?.delete(name);
  }
  return undefined;
}

/** A verdict refused when the parameter types Parse declares are not acceptable (param-types.ts). */
export function refuseParamTypes(v: Verdict, declared: readonly number[]): Verdict {
  if (v.kind === 'deny' || declared.length === 0) return v;
  const problem = declaredTypeProblem(v, declared);
  if (!problem) return v;
  return {
    ...refusal('PGW_POLICY_DENIED', problem.message),
    ruleIds: v.ruleIds,
    tables: v.tables,
    columns: v.columns,
    statementKinds: v.statementKinds,
    reasons: [...v.reasons, problem.reason],
  };
}

/** Names a verdict's statements add to the session when they run (PREPARE, DECLARE). */
export function namesAdded(v: Verdict): number {
  if (v.kind === 'deny' || !v.effects) return 0;
  let n = 0;
  for (const e of v.effects) if (e.prepare !== undefined || e.declareCursor !== undefined) n++;
  return n;
}

/**
 * Refused when `adding` names would take a session holding `held` past `limit`: pgwarden keeps a
 * judgement for each, so their number must be bounded (the server would hold them all too).
 */
export function refuseNames(v: Verdict, held: number, adding: number, limit: number): Verdict {
  if (v.kind === 'deny' || adding === 0 || held + adding <= limit) return v;
  return sessionLimitRefusal(held, limit);
}

export function sessionLimitRefusal(held: number, limit: number): Verdict {
  return refusal(
    'PGW_SESSION_LIMIT',
    `this session holds ${held} prepared statements, portals and cursors, and pgwarden allows at most ${limit}: close some first (Close, DEALLOCATE, CLOSE)`,
  );
}

/**
 * Whether two verdicts send the server the same thing, so a statement prepared under the rules of
 * one may run under the other's.
 */
export function judgedAlike(a: Verdict, b: Verdict): boolean {
  if (a.kind !== b.kind || a.kind === 'deny' || b.kind === 'deny') return false;
  if (a.kind === 'rewrite' && b.kind === 'rewrite' && a.sql !== b.sql) return false;
  return (
    JSON.stringify(a.paramChecks ?? []) === JSON.stringify(b.paramChecks ?? []) &&
    JSON.stringify(a.effects ?? []) === JSON.stringify(b.effects ?? [])
  );
}

/** A prepared statement judged under rules since replaced, which the rules in force judge otherwise. */
export function rulesChangedRefusal(statement: string): Verdict {
  const name = statement === '' ? 'the unnamed statement' : `statement "${statement}"`;
  return {
    ...refusal(
      'PGW_RULES_CHANGED',
      `the rules changed since ${name} was prepared and would not run it as it was prepared; close it and prepare it again`,
    ),
    reasons: ['rules_changed'],
  };
}
