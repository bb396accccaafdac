import { describe, expect, it } from 'vitest';
import type { Judgement } from '../policy/verdict.js';
import { undoChanges, type ChangeLog } from './mirror.js';
import { SessionNames, type JudgedStatement } from './names.js';

const judgement = {} as Judgement;
const statement = (name: string): JudgedStatement => ({ name, sql: 'SELECT 1', judgement });
const log = (): ChangeLog => ({ changes: undefined });

describe("a session's mirrored names", () => {
  it('sees protocol and SQL-level prepared statements as one name space', () => {
    const names = new SessionNames();
    names.mirror.statements.set('s', statement('s'), log());
    names.applyEffects([{ statement: 0, prepare: 'p' }], log());
    expect(names.statementNameTaken('s')).toBe(true);
    expect(names.statementNameTaken('p')).toBe(true);
    expect(names.statementNameTaken('q')).toBe(false);
  });

  it('Close of a statement drops a PREPAREd one of that name, and is undone if the server skips it', () => {
    const names = new SessionNames();
    names.applyEffects([{ statement: 0, prepare: 'p' }], log());
    const close = log();
    names.close('S', 'p', close);
    expect(names.statementNameTaken('p')).toBe(false);
    undoChanges(close);
    expect(names.statementNameTaken('p')).toBe(true);
  });

  it('SQL CLOSE ALL drops protocol-level portals too', () => {
    const names = new SessionNames();
    names.mirror.portals.set('c', { statement: statement(''), order: 0, parameters: false }, log());
    names.applyEffects([{ statement: 0, closeCursor: { all: true } }], log());
    expect(names.livePortal('c')).toBeUndefined();
  });

  it('forgets portals bound before the request at which a transaction ended, not those after', () => {
    const names = new SessionNames();
    names.mirror.portals.set('old', { statement: statement(''), order: 1, parameters: false }, log());
    names.mirror.portals.set('new', { statement: statement(''), order: 5, parameters: false }, log());
    names.transactionEnded(3);
    expect(names.livePortal('old')).toBeUndefined();
    expect(names.livePortal('new')).toBeDefined();
    // An earlier end reported late changes nothing.
    names.transactionEnded(2);
    expect(names.livePortal('new')).toBeDefined();
  });
});
