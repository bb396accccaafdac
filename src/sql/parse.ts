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

/** Parses with the real PostgreSQL grammar; throws the parser's error for invalid SQL. */
export function parseSql(sql: string): ParseResult {
  const result = parseSync(sql) as ParseResult;
  return { stmts: result.stmts ?? [] };
}

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
  return scanSync(sql).tokens;
}
