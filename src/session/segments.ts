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
 *
 * A segment that changed only the unnamed portal (a Bind of it: every query of most drivers) is
 * the exception: the only message that reads that portal is an Execute of it, and one whose own
 * segment bound it first reads that Bind's portal, which the server runs or skips with it. Making
 * every later segment wait for such a one forwarded a driver's pipeline one query per round trip
 * (red team, round 50: 20,000 pipelined queries of postgres.js, five times slower).
 */
export class Segments {
  private sent = 0;
  private answered = 0;
  /** Whether the segment being sent changed the mirror; the last ended segment that did. */
  private changing = false;
  private lastChanged = -1;
  /** The same for changes to anything but the unnamed portal. */
  private changingOther = false;
  private lastChangedOther = -1;
  /** Whether the segment being sent has bound the unnamed portal. */
  private boundUnnamed = false;

  /**
   * A request is forwarded; `unnamedPortalOnly` when its changes (if any) are all to the unnamed
   * portal, `bindsUnnamed` when it is a Bind of that portal.
   */
  forwarded(p: Pending, unnamedPortalOnly: boolean, bindsUnnamed: boolean): void {
    if (p.changes !== undefined) {
      this.changing = true;
      if (!unnamedPortalOnly) this.changingOther = true;
    }
    if (bindsUnnamed) this.boundUnnamed = true;
    if (p.kind === 'query' || p.kind === 'sync') {
      if (this.changing) this.lastChanged = this.sent;
      if (this.changingOther) this.lastChangedOther = this.sent;
      this.sent++;
      this.changing = false;
      this.changingOther = false;
      this.boundUnnamed = false;
    }
  }

  /** ReadyForQuery: the oldest segment unanswered is answered. */
  answer(): void {
    this.answered++;
  }

  /** Whether `m` must wait for the server to answer the segments that changed the mirror. */
  mustWait(m: FrontendMessage): boolean {
    if (this.lastChanged < this.answered) return false;
    const reads =
      m.code === Frontend.Query ||
      m.code === Frontend.Parse ||
      m.code === Frontend.Bind ||
      m.code === Frontend.Execute;
    if (!reads) return false;
    if (this.lastChangedOther >= this.answered) return true;
    // Only the unnamed portal changed: an Execute of it that its own segment has not bound waits.
    return m.code === Frontend.Execute && !this.boundUnnamed && m.buffer[m.bodyStart] === 0;
  }
}
