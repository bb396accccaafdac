import type { FrontendMessage } from '../protocol/frontend-decoder.js';

/**
 * The bytes one received chunk turns into for the server. Messages forwarded unchanged are kept
 * as one range of the chunk they arrived in, so a pipelined Parse/Bind/Execute/Sync goes out as
 * the single slice it came in, with no copy and no per-message Buffer.
 */
export class OutBatch {
  private parts: Buffer[] = [];
  private run: Buffer | undefined;
  private runStart = 0;
  private runEnd = 0;

  addMessage(m: FrontendMessage): void {
    if (this.run === m.buffer && this.runEnd === m.start) {
      this.runEnd = m.end;
      return;
    }
    this.closeRun();
    this.run = m.buffer;
    this.runStart = m.start;
    this.runEnd = m.end;
  }

  add(bytes: Buffer): void {
    this.closeRun();
    this.parts.push(bytes);
  }

  /** Everything gathered so far as one buffer (undefined if nothing), leaving the batch empty. */
  take(): Buffer | undefined {
    this.closeRun();
    const parts = this.parts;
    if (parts.length === 0) return undefined;
    this.parts = [];
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  private closeRun(): void {
    if (this.run !== undefined) {
      this.parts.push(this.run.subarray(this.runStart, this.runEnd));
      this.run = undefined;
    }
  }
}
