import { loadModule, parseSync, fingerprintSync } from 'libpg-query';

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
