import { describe, expect, it } from 'vitest';
import type { Judgement } from '../policy/verdict.js';
import { confirmChanges, undoChanges, type ChangeLog } from './mirror.js';
import { SessionNames, type JudgedStatement } from './names.js';

const judgement = {} as Judgement;
const statement = (name: string): JudgedStatement => ({ name, sql: 'SELECT 1', judgement, rulesVersion: 0 });
const log = (): ChangeLog => ({ changes: undefined });

describe("a session's mirrored names", () => {
  it('sees protocol and SQL-level prepared statements as one name space', () => {
    const names = new SessionNames();
    names.mirror.statements.set('s', statement('s'), log());
    names.applyEffects([{ statement: 0, prepare: 'p' }], log(), 0, 0);
    expect(names.statementNameTaken('s')).toBe(true);
    expect(names.statementNameTaken('p')).toBe(true);
    expect(names.statementNameTaken('q')).toBe(false);
  });

  it('Close of a statement drops a PREPAREd one of that name, and is undone if the server skips it', () => {
    const names = new SessionNames();
    names.applyEffects([{ statement: 0, prepare: 'p' }], log(), 0, 0);
    const close = log();
    names.close('S', 'p', close);
    expect(names.statementNameTaken('p')).toBe(false);
    undoChanges(close);
    expect(names.statementNameTaken('p')).toBe(true);
  });

  it('keeps PREPARE and DECLARE texts up to 1 Mi characters a session, freed as names go, undo included', () => {
    const names = new SessionNames();
    const source = { sql: 'x'.repeat(100_000), forwarded: 'y'.repeat(100_000), protocol: 'simple' as const };
    const prepare = (name: string, l = log()): ChangeLog => {
      names.applyEffects([{ statement: 0, prepare: name, source }], l, 0, 0);
      return l;
    };
    for (let i = 0; i < 5; i++) prepare(`p${i}`);
    // Beyond the budget a name keeps no text: after a reload it is refused as before.
    const sixth = prepare('p5');
    expect(names.sqlName({ kind: 'prepared', name: 'p4' })?.source).toBeDefined();
    expect(names.sqlName({ kind: 'prepared', name: 'p5' })?.source).toBeUndefined();
    undoChanges(sixth);
    const dropped = log();
    names.applyEffects([{ statement: 0, deallocate: 'p0' }], dropped, 0, 0);
    confirmChanges(dropped);
    prepare('p6');
    expect(names.sqlName({ kind: 'prepared', name: 'p6' })?.source).toBeDefined();
    // An undone DEALLOCATE gives the name back with its text.
    const again = log();
    names.applyEffects([{ statement: 0, deallocate: 'p6' }], again, 0, 0);
    undoChanges(again);
    expect(names.sqlName({ kind: 'prepared', name: 'p6' })?.source).toBe(source);
  });

  it('SQL CLOSE ALL drops protocol-level portals too', () => {
    const names = new SessionNames();
    names.mirror.portals.set('c', { statement: statement(''), order: 0, parameters: false }, log());
    names.applyEffects([{ statement: 0, closeCursor: { all: true } }], log(), 0, 0);
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

  it('keeps nothing of names made and dropped once the server has confirmed them', () => {
    const names = new SessionNames();
    for (let i = 0; i < 1000; i++) {
      const parse = log();
      names.mirror.statements.set(`s${i}`, statement(`s${i}`), parse);
      const close = log();
      names.close('S', `s${i}`, close);
      confirmChanges(parse);
      confirmChanges(close);
    }
    expect(names.statements.size).toBe(0);
    expect(names.mirror.statements.unconfirmed).toBe(0);
    // An unconfirmed change is still kept, and can still be undone.
    const parse = log();
    names.mirror.statements.set('t', statement('t'), parse);
    expect(names.mirror.statements.unconfirmed).toBe(1);
    undoChanges(parse);
    expect(names.statementNameTaken('t')).toBe(false);
    expect(names.mirror.statements.unconfirmed).toBe(0);
  });

  it('confirms the statements of a simple Query before the failing one, and undoes the rest', () => {
    const names = new SessionNames();
    const query = log();
    names.applyEffects(
      [
        { statement: 0, prepare: 'a' },
        { statement: 1, prepare: 'b' },
      ],
      query,
      0,
      0,
    );
    undoChanges(query, 1);
    expect(names.statementNameTaken('a')).toBe(true);
    expect(names.statementNameTaken('b')).toBe(false);
    expect(names.mirror.prepared.unconfirmed).toBe(0);
  });

  it('counts named statements, portals, PREPAREd names and cursors; the unnamed ones are free', () => {
    const names = new SessionNames();
    names.mirror.statements.set('', statement(''), log());
    names.mirror.portals.set('', { statement: statement(''), order: 0, parameters: false }, log());
    expect(names.count).toBe(0);
    names.mirror.statements.set('s', statement('s'), log());
    names.mirror.portals.set('p', { statement: statement('s'), order: 1, parameters: false }, log());
    names.applyEffects(
      [
        { statement: 0, prepare: 'q' },
        { statement: 0, declareCursor: 'c' },
      ],
      log(),
      0,
      0,
    );
    expect(names.count).toBe(4);
  });

  it('forgets a cursor without HOLD when its transaction ends, and keeps one WITH HOLD (red team, round 48)', () => {
    const names = new SessionNames();
    // BEGIN; DECLARE a; DECLARE h WITH HOLD; COMMIT; in one Query of order 3, statements 1 to 3.
    names.applyEffects(
      [
        { statement: 1, declareCursor: 'a' },
        { statement: 2, declareCursor: 'h', hold: true },
      ],
      log(),
      0,
      3,
    );
    // A cursor declared after the COMMIT (statement 4) is not touched by it.
    names.applyEffects([{ statement: 4, declareCursor: 'later' }], log(), 0, 3);
    names.transactionEnded(3, 3);
    expect([...names.policyState.cursors.keys()].sort()).toEqual(['h', 'later']);
    expect(names.count).toBe(2);
    // The end of the next transaction takes `later`; `h` stays until it is closed.
    names.transactionEnded(5);
    expect([...names.policyState.cursors.keys()]).toEqual(['h']);
  });
});
