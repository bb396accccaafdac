import { describe, expect, it } from 'vitest';
import type { SessionEffect, Verdict } from '../policy/verdict.js';
import {
  judgedAlike,
  MAX_NAME_BYTES,
  namesAdded,
  nameTooLong,
  refusal,
  refuseNames,
  refuseParamTypes,
  refuseTakenName,
} from './refusals.js';

const facts = { ruleIds: [], reasons: [], tables: [], columns: [], flags: [], statementKinds: [] };
const allow = (effects?: SessionEffect[]): Verdict => ({
  kind: 'allow',
  ...facts,
  ...(effects ? { effects } : {}),
});
const taken = (names: string[]) => (name: string) => names.includes(name);
const messageOf = (v: Verdict) => (v.kind === 'deny' ? v.message : undefined);

describe('protocol names the server would shorten', () => {
  it('refuses names over 63 bytes, counted in UTF-8', () => {
    expect(nameTooLong('s'.repeat(MAX_NAME_BYTES))).toBe(false);
    expect(nameTooLong('s'.repeat(MAX_NAME_BYTES + 1))).toBe(true);
    // 22 characters, 66 bytes: short in UTF-16 units, too long for the server.
    expect(nameTooLong('é'.repeat(33))).toBe(true);
    expect(nameTooLong('é'.repeat(31))).toBe(false);
  });
});

describe('PREPARE of a name already taken', () => {
  it('refuses a PREPARE whose name the session already has', () => {
    const v = refuseTakenName(allow([{ statement: 0, prepare: 'p' }]), taken(['p']));
    expect(messageOf(v)).toBe('prepared statement "p" already exists');
  });

  it('refuses the second of two PREPAREs of one name in one message', () => {
    const effects = [
      { statement: 0, prepare: 'p' },
      { statement: 1, prepare: 'p' },
    ];
    expect(messageOf(refuseTakenName(allow(effects), taken([])))).toContain('"p" already exists');
  });

  it('accepts a PREPARE after a DEALLOCATE of that name (or ALL) earlier in the message', () => {
    const named = [
      { statement: 0, deallocate: 'p' },
      { statement: 1, prepare: 'p' },
    ];
    const all = [
      { statement: 0, deallocate: { all: true as const } },
      { statement: 1, prepare: 'p' },
    ];
    expect(refuseTakenName(allow(named), taken(['p'])).kind).toBe('allow');
    expect(refuseTakenName(allow(all), taken(['p'])).kind).toBe('allow');
  });

  it('refuses a PREPARE when the DEALLOCATE comes after it', () => {
    const effects = [
      { statement: 0, prepare: 'p' },
      { statement: 1, deallocate: 'p' },
    ];
    expect(refuseTakenName(allow(effects), taken(['p'])).kind).toBe('deny');
  });

  it('leaves a verdict without effects as it is', () => {
    const v = allow();
    expect(refuseTakenName(v, taken(['p']))).toBe(v);
  });
});

describe('declared parameter types', () => {
  const checked: Verdict = {
    kind: 'rewrite',
    ...facts,
    ruleIds: ['tables.public.orders'],
    sql: 'INSERT ...',
    paramChecks: [{ index: 1, equals: 'acme', type: 'text', message: 'other tenant' }],
  };

  it('refuses a checked parameter declared with a type that reads the value differently', () => {
    const tsvector = 3614;
    const v = refuseParamTypes(checked, [tsvector]);
    expect(v.kind).toBe('deny');
    // The refusal keeps what the rules decided, for the record.
    expect(v.ruleIds).toEqual(['tables.public.orders']);
  });

  it('accepts text, varchar and no declared type', () => {
    expect(refuseParamTypes(checked, [25])).toBe(checked);
    expect(refuseParamTypes(checked, [1043])).toBe(checked);
    expect(refuseParamTypes(checked, [])).toBe(checked);
  });
});

describe('the names a session may hold', () => {
  const prepareAndDeclare = allow([
    { statement: 0, prepare: 'p' },
    { statement: 1, declareCursor: 'c' },
    { statement: 2, deallocate: 'q' },
  ]);

  it('counts what PREPARE and DECLARE add', () => {
    expect(namesAdded(prepareAndDeclare)).toBe(2);
    expect(namesAdded(allow())).toBe(0);
  });

  it('refuses what would take the session past the limit, and nothing up to it', () => {
    expect(refuseNames(prepareAndDeclare, 8, 2, 10)).toBe(prepareAndDeclare);
    const v = refuseNames(prepareAndDeclare, 9, 2, 10);
    expect(v).toMatchObject({ kind: 'deny', code: 'PGW_SESSION_LIMIT' });
    expect(messageOf(v)).toContain('at most 10');
  });
});

describe('judgedAlike', () => {
  const allow = { ...refusal('PGW_POLICY_DENIED', 'x'), kind: 'allow' } as unknown as Verdict;
  const rewrite = (sql: string): Verdict => ({ ...allow, kind: 'rewrite', sql }) as Verdict;
  it('is true only when the server would be sent the same thing', () => {
    expect(judgedAlike(allow, allow)).toBe(true);
    expect(judgedAlike(rewrite('a'), rewrite('a'))).toBe(true);
    expect(judgedAlike(rewrite('a'), rewrite('b'))).toBe(false);
    expect(judgedAlike(allow, rewrite('a'))).toBe(false);
    const checked = { ...rewrite('a'), paramChecks: [{ index: 1 }] } as unknown as Verdict;
    expect(judgedAlike(checked, rewrite('a'))).toBe(false);
    const denied = refusal('PGW_POLICY_DENIED', 'no');
    expect(judgedAlike(denied, denied)).toBe(false);
  });
});
