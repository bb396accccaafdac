import { Frontend } from '../protocol/codes.js';
import type { FrontendMessage } from '../protocol/frontend-decoder.js';
import type { Pending } from './pending.js';

/**
 * The segments of a client's pipeline, each ended by a Query or a Sync and answered by one
 * ReadyForQuery, and which of them changed pgwarden's mirror of the session (names.ts).
 *
 * pgwarden applies a message's changes to its mirror when it forwards the message, and undoes
 * them when the server reports that it did not carry the message out. Within one pipeline (up
 * to Sync) that is enough: after an error the server skips the rest of it. Across a Sync, or
 * after a Query, later messages run even if earlier ones failed: a message that reads the mirror
 * (to judge SQL, to check a name, to find a statement's checks) waits until the server has
 * answered every earlier pipeline that changed it, so it is judged against what the server has.
 */
export class Segments {
  private sent = 0;
  private answered = 0;
  /** Whether the segment being sent changed the mirror; the last ended segment that did. */
  private changing = false;
  private lastChanged = -1;

  /** A request is forwarded. */
  forwarded(p: Pending): void {
    if (p.changes !== undefined) this.changing = true;
    if (p.kind === 'query' || p.kind === 'sync') {
      if (this.changing) this.lastChanged = this.sent;
      this.sent++;
      this.changing = false;
    }
  }

  /** ReadyForQuery: the oldest segment unanswered is answered. */
  answer(): void {
    this.answered++;
  }

  /** Whether `m` must wait for the server to answer the segments that changed the mirror. */
  mustWait(m: FrontendMessage): boolean {
    if (this.lastChanged < this.answered) return false;
    return (
      m.code === Frontend.Query ||
      m.code === Frontend.Parse ||
      m.code === Frontend.Bind ||
      m.code === Frontend.Execute
    );
  }
}
