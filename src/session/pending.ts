/**
 * What the session is waiting for from the server, in the order requests were forwarded.
 * The server answers messages strictly in order, so the head of this queue tells what each
 * backend message belongs to: https://www.postgresql.org/docs/current/protocol-flow.html
 */
import type { Change, ChangeLog } from './mirror.js';
import type { JudgedStatement } from './names.js';

/**
 * 'flush' marks a forwarded Flush: the server answers it with nothing, unless an interrupt (a
 * statement timeout armed by an earlier Parse, Bind or Describe) fires as it reads it, and then
 * with an error after which it skips to Sync.
 */
export type PendingKind = 'query' | 'parse' | 'bind' | 'describe' | 'execute' | 'close' | 'sync' | 'flush';

export class Pending implements ChangeLog {
  /** When it was forwarded; only measured for requests whose outcome is recorded. */
  readonly startedAt: number;
  rows: number | null = null;
  command: string | null = null;
  sqlstate: string | null = null;
  errorMessage: string | null = null;
  /**
   * The request ran with bind parameter values and audit.redactParameters is on: the server's
   * error message can quote those values, so the recorded message has its quoted spans redacted.
   */
  redactError = false;
  /**
   * The Bind whose values are redacted from its error message besides the quoted spans, or
   * 'withheld' when it was too large to keep: the message is then not recorded at all.
   */
  secrets: Secrets | undefined = undefined;
  /**
   * The refusals its SQL's parent key guards raise (Verdict.refusals): only those are pgwarden's own
   * (parentKeyRefusal), not an agent's cast of a text of its choosing.
   */
  refusals: readonly string[] = [];
  /**
   * A Bind of the unnamed statement: its execution is recorded at Execute, so if the Bind fails
   * first (the server plans it with the values, and folds `chr($1::int)` into an error) no record
   * would tell of the attempt. Set until the Execute is recorded.
   */
  unrecordedBind: { statement: JudgedStatement; portal: string } | undefined = undefined;
  /**
   * A Parse of the unnamed statement, recorded at Execute: if the server refuses the Parse (a
   * literal its type's input function rejects, an operator that does not exist) before an
   * Execute of it is recorded, no record would tell of the attempt. Set until then.
   */
  unrecordedParse: JudgedStatement | undefined = undefined;
  /** Changes to pgwarden's mirror of server state this request makes; undone if it is not carried out. */
  changes: Change[] | undefined = undefined;
  /** For a simple Query: how many of its statements the server has finished. */
  done = 0;
  /** Its statements (0-based) that are ROLLBACK TO SAVEPOINT: their ROLLBACK ends no transaction. */
  rollbacksTo: readonly number[] | undefined = undefined;
  /** For a simple Query: how many statements it holds. */
  statements = 1;
  /** Its place among the session's forwarded requests (0, 1, 2, ...); set when it is queued. */
  order = -1;

  constructor(
    readonly kind: PendingKind,
    /** The decision record this request's outcome completes, if any. */
    readonly recordId: string | undefined,
    /** pgwarden's own ErrorResponse, sent instead of the server's answer to a stand-in. */
    readonly standIn: Buffer | undefined,
  ) {
    this.startedAt = recordId === undefined ? 0 : performance.now();
  }
}

/** A Bind kept for redacting its values from error messages, or 'withheld' (see redact-error.ts). */
export type Secrets = Buffer | 'withheld';

export function pending(kind: PendingKind, recordId?: string, standIn?: Buffer): Pending {
  return new Pending(kind, recordId, standIn);
}

/**
 * Requests a session may have forwarded and not yet had answered, and the bytes they keep; beyond
 * either the client is not read until answers come. A client that never reads its answers (so
 * pgwarden stops reading the server's) while sending Flushes, which the server answers with
 * nothing, grew the queue until the process ran out of memory, ending every session (red team,
 * round 32). The server's output buffer (8 KB, a few hundred answers at most) is far below the
 * count, so answers always come and free the queue.
 */
const MAX_QUEUED = 10_000;
/**
 * A client held by the count is read again once this many answers have freed room, not at the
 * first: resumed one request at a time, a client pipelining 20,000 queries had each forwarded in
 * a write of its own, and ran five times slower than without pgwarden (red team, round 50). The
 * server answers at least 5 bytes a request and holds back at most its 8 KB output buffer, so
 * this many answers always come.
 */
const RESUME_ROOM = 1_000;
const MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/** What a queued request costs besides the Bind it keeps, roughly. */
const QUEUED_OVERHEAD_BYTES = 256;

function bytesOf(p: Pending): number {
  return QUEUED_OVERHEAD_BYTES + (p.secrets instanceof Buffer ? p.secrets.length : 0);
}

/** A FIFO with O(1) shift; sessions pipeline many requests. */
export class PendingQueue {
  private items: (Pending | undefined)[] = [];
  private head = 0;
  private bytes = 0;

  push(p: Pending): void {
    this.items.push(p);
    this.bytes += bytesOf(p);
  }
  peek(): Pending | undefined {
    return this.items[this.head];
  }
  /** The request forwarded last, if still unanswered. */
  last(): Pending | undefined {
    return this.length > 0 ? this.items[this.items.length - 1] : undefined;
  }
  /** Whether the session must stop reading its client until the server answers. */
  get full(): boolean {
    return this.length >= MAX_QUEUED || this.bytes >= MAX_QUEUED_BYTES;
  }
  /** Whether a client held because the queue was full may be read again (RESUME_ROOM). */
  get roomToResume(): boolean {
    return this.length <= MAX_QUEUED - RESUME_ROOM && this.bytes < MAX_QUEUED_BYTES;
  }
  shift(): Pending | undefined {
    const p = this.items[this.head];
    if (p === undefined) return undefined;
    this.bytes -= bytesOf(p);
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return p;
  }
  get length(): number {
    return this.items.length - this.head;
  }
  /** Whether a request still waits for the server's answer (a Flush's mark waits for none). */
  awaitsAnswer(): boolean {
    for (let i = this.head; i < this.items.length; i++) if (this.items[i]?.kind !== 'flush') return true;
    return false;
  }
  /** Takes every request before the next Sync: the server skips them after an error. */
  shiftUntilSync(): Pending[] {
    const skipped: Pending[] = [];
    while (this.length > 0 && this.peek()!.kind !== 'sync') skipped.push(this.shift()!);
    return skipped;
  }
  drain(): Pending[] {
    const all: Pending[] = [];
    while (this.length > 0) all.push(this.shift()!);
    return all;
  }
}
