import { loadModule, parseSync, fingerprintSync, scanSync } from 'libpg-query';

/** libpg-query compiles PostgreSQL's own parser to WASM; it must be loaded once before use. */
let loaded: Promise<void> | undefined;
export function loadParser(): Promise<void> {
  loaded ??= loadModule();
  return loaded;
}

export interface ParseResult {
  readonly stmts: readonly {
    readonly stmt: Record<string, unknown>;
    readonly stmt_location?: number;
    readonly stmt_len?: number;
  }[];
}

/**
 * The parser of this thread failed in a way that leaves it unusable: its WebAssembly code ran out
 * of stack (a sum of 10,000 terms: RangeError) and the unwinding left part of its stack behind,
 * so that after a few dozen such statements every call failed with "memory access out of bounds"
 * for every tenant (red team, round 45). Nothing is parsed here again; a judge thread that sees
 * this is replaced by a new one with a parser of its own.
 */
export class ParserLostError extends Error {
  constructor(
    cause: unknown,
    /** True for the call that lost it, false for every call after. */
    readonly now: boolean,
  ) {
    super(`the SQL parser failed (${(cause as Error).message}) and cannot be used again in this thread`, {
      cause,
    });
  }
}

let lostBy: unknown;

/** Whether this thread's parser has failed beyond use (ParserLostError). */
export function parserLost(): boolean {
  return lostBy !== undefined;
}

/** Calls the library; a failure of its machine (not a syntax error) loses the parser for good. */
function guarded<T>(call: () => T): T {
  if (lostBy !== undefined) throw new ParserLostError(lostBy, false);
  try {
    return call();
  } catch (err) {
    if (err instanceof RangeError || err instanceof WebAssembly.RuntimeError) {
      lostBy = err;
      throw new ParserLostError(err, true);
    }
    throw err;
  }
}

/** Parses with the real PostgreSQL grammar; throws the parser's error for invalid SQL. */
export function parseSql(sql: string): ParseResult {
  const result = guarded(() => parseSync(sql) as ParseResult);
  return { stmts: result.stmts ?? [] };
}

/**
 * The statement's fingerprint for its record, or '' when the library cannot make one. Not guarded:
 * the fingerprint walks the tree with frames of its own and may run out of stack where parsing
 * did not, and a record without a fingerprint harms nothing.
 */
export function fingerprint(sql: string): string {
  try {
    return fingerprintSync(sql);
  } catch {
    return '';
  }
}

/** A token of PostgreSQL's scanner: its [start, end) byte offsets and name (SCONST, ICONST...). */
export interface ScanToken {
  readonly start: number;
  readonly end: number;
  readonly tokenName: string;
}

/** PostgreSQL's own scanner over the text; throws where the server's scanner would fail. */
export function scanTokens(sql: string): readonly ScanToken[] {
  return guarded(() => scanSync(sql).tokens);
}
