import { beforeAll, describe, expect, it } from 'vitest';
import { fingerprint, loadParser, parserLost, parserReplaced, parseSql, ParserLostError } from './parse.js';

/** Deep enough to exhaust the WASM stack; the engine's nesting estimate would refuse it first. */
const sum = `SELECT ${Array.from({ length: 20_000 }, () => '1').join(' + ')}`;

function failureOf(sql: string): unknown {
  try {
    parseSql(sql);
  } catch (err) {
    return err;
  }
  return undefined;
}

// Runs on the test process's main thread (vitest's forks pool), as the event loop's parser does.
describe('the event loop parser', () => {
  beforeAll(async () => {
    await loadParser();
    await parserReplaced();
  });

  it('is replaced at once by a spare when a statement runs it out of stack, time after time (red team, round 45)', async () => {
    // Dozens of losses used to leave the parser failing every call ("memory access out of bounds").
    for (let i = 0; i < 40; i++) {
      const failure = failureOf(sum);
      expect(failure).toBeInstanceOf(ParserLostError);
      expect((failure as ParserLostError).now).toBe(true);
      // The next statement is parsed by the spare, with no wait.
      expect(parserLost()).toBe(false);
      expect(parseSql('SELECT 1').stmts).toHaveLength(1);
      await parserReplaced();
    }
    // The look-alike: ordinary statements parse and fingerprint as before.
    expect(parseSql('SELECT 1; SELECT 2').stmts).toHaveLength(2);
    expect(fingerprint('SELECT 1')).toMatch(/^[0-9a-f]{16}$/);
  });

  it('refuses everything, never parsing with a lost copy, when it loses the spare too before the next is loaded', async () => {
    expect((failureOf(sum) as ParserLostError).now).toBe(true);
    expect((failureOf(sum) as ParserLostError).now).toBe(true);
    expect(parserLost()).toBe(true);
    expect((failureOf('SELECT 1') as ParserLostError).now).toBe(false);
    await parserReplaced();
    expect(parserLost()).toBe(false);
    expect(parseSql('SELECT 1').stmts).toHaveLength(1);
  });

  it('tells a syntax error from a lost parser', () => {
    expect(() => parseSql('SELEC 1')).toThrow(/syntax error/);
    expect(parserLost()).toBe(false);
  });
});
