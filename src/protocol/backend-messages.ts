/**
 * Readers for the few backend messages pgwarden looks inside while relaying results.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 */

/** The fields pgwarden reads from an ErrorResponse or NoticeResponse body. */
export interface ErrorFieldValues {
  sqlstate: string;
  severity: string;
  message: string;
  /** 's' and 't': the relation the error is about, when the server names one. */
  schema: string | undefined;
  table: string | undefined;
}

/** The SQLSTATE, severity, message and relation of an ErrorResponse or NoticeResponse body. */
export function readErrorFields(body: Buffer): ErrorFieldValues {
  const f: ErrorFieldValues = {
    sqlstate: '',
    severity: '',
    message: '',
    schema: undefined,
    table: undefined,
  };
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const field = body[pos]!;
    const end = body.indexOf(0, pos + 1);
    if (end < 0) break;
    const value = body.toString('utf8', pos + 1, end);
    if (field === 0x43)
      f.sqlstate = value; // 'C'
    else if (field === 0x56)
      f.severity = value; // 'V': never localized
    else if (field === 0x4d)
      f.message = value; // 'M'
    else if (field === 0x73)
      f.schema = value; // 's'
    else if (field === 0x74) f.table = value; // 't'
    pos = end + 1;
  }
  return f;
}

/** The command tag of a CommandComplete body, e.g. "INSERT 0 3". */
export function readCommandTag(buf: Buffer, start = 0, end = buf.length): string {
  const nul = buf.indexOf(0, start);
  return buf.toString('utf8', start, nul < 0 || nul > end ? end : nul);
}

/** Rows returned or affected, from the last number of a command tag ("SELECT 5", "INSERT 0 3"). */
export function rowsFromTag(tag: string): number | null {
  const m = /(\d+)$/.exec(tag);
  return m ? Number(m[1]) : null;
}

export function readParameterStatus(body: Buffer): { name: string; value: string } {
  const a = body.indexOf(0);
  const b = body.indexOf(0, a + 1);
  return { name: body.toString('utf8', 0, a), value: body.toString('utf8', a + 1, b < 0 ? body.length : b) };
}

/**
 * Whether a CommandComplete tag is COMMIT or ROLLBACK (END, ABORT, and ROLLBACK TO SAVEPOINT
 * answer with these too, and so does a COMMIT of a failed transaction, with ROLLBACK): the
 * transaction, or a subtransaction, ended and took portals with it. A ROLLBACK TO SAVEPOINT is
 * told apart by its statement (SessionEffect.rollbackTo): the transaction goes on.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COMMANDCOMPLETE
 */
export function transactionEnd(
  buf: Buffer,
  bodyStart: number,
  end: number,
): 'COMMIT' | 'ROLLBACK' | undefined {
  const n = end - bodyStart;
  if (n === 7 && buf.toString('latin1', bodyStart, end) === 'COMMIT\0') return 'COMMIT';
  if (n === 9 && buf.toString('latin1', bodyStart, end) === 'ROLLBACK\0') return 'ROLLBACK';
  return undefined;
}
