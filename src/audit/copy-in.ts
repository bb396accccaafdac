import type pg from 'pg';

/**
 * `COPY ... FROM STDIN` through a node-postgres client. pg runs an object with `submit` as a query
 * of its own (a "Submittable") and hands it the backend's answers; this one sends the whole text
 * as one CopyData message. https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-COPY
 */
interface PgConnection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
}

class CopyIn {
  constructor(
    private readonly sql: string,
    private readonly data: string,
    private readonly done: (err: Error | undefined) => void,
  ) {}

  submit(connection: PgConnection): void {
    connection.query(this.sql);
  }

  handleCopyInResponse(connection: PgConnection): void {
    connection.sendCopyFromChunk(Buffer.from(this.data, 'utf8'));
    connection.endCopyFrom();
  }

  handleCommandComplete(): void {}

  // After an error pg forgets the active query, so ReadyForQuery never reaches it: answer now.
  handleError(err: Error): void {
    this.done(err);
  }

  handleReadyForQuery(): void {
    this.done(undefined);
  }
}

export function copyIn(client: pg.PoolClient, sql: string, data: string): Promise<void> {
  return new Promise((resolve, reject) => {
    client.query(new CopyIn(sql, data, (err) => (err ? reject(err) : resolve())) as never);
  });
}

/** One value in COPY's text format: \N for NULL; backslash, newline, CR and tab escaped. */
export function copyValue(v: unknown): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v === 'number') return String(v);
  const s = Array.isArray(v) ? arrayLiteral(v) : String(v);
  return /[\\\n\r\t]/.test(s) ? s.replace(/[\\\n\r\t]/g, (c) => COPY_ESCAPES[c] as string) : s;
}

const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** A text[] literal with every element quoted: {"a","b\"c"}. */
function arrayLiteral(items: readonly unknown[]): string {
  return `{${items.map((i) => `"${String(i).replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;
}

/** Rows as COPY text: one line per row, the columns in `columns` order. */
export function copyText(rows: readonly Record<string, unknown>[], columns: readonly string[]): string {
  let out = '';
  for (const r of rows) {
    for (let i = 0; i < columns.length; i++) {
      if (i > 0) out += '\t';
      out += copyValue(r[columns[i] as string]);
    }
    out += '\n';
  }
  return out;
}
