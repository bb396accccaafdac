import pino from 'pino';
import { makeParentDir, PRIVATE_FILE_MODE } from './spool-layout.js';

export interface NdjsonOutput {
  write(lines: string): void;
  /** Opens a file target again by its name (log rotation). */
  reopen(): void;
  close(): Promise<void>;
}

/**
 * The SIEM stream: the same lines as the spool, already in pino's line format, written through
 * pino's asynchronous destination (sonic-boom) so a slow stdout never blocks a statement.
 */
/** Longest a written line waits in the buffer before it reaches the file or stdout. */
const FLUSH_INTERVAL_MS = 1000;

export function openNdjson(target: string): NdjsonOutput {
  if (target === 'off') return { write: () => {}, reopen: () => {}, close: async () => {} };
  if (target !== 'stdout') ensureParent(target);
  const dest = pino.destination({
    dest: target === 'stdout' ? 1 : target,
    sync: false,
    mkdir: false,
    // Every agent's SQL text: readable by pgwarden's user only (an existing file keeps its mode).
    mode: PRIVATE_FILE_MODE,
    minLength: 4096,
  });
  // minLength batches writes under load; at low traffic a line must still reach the SIEM promptly.
  const flusher = setInterval(() => {
    try {
      dest.flush();
    } catch {
      // Not open yet, or already closed: the next tick or close() takes care of it.
    }
  }, FLUSH_INTERVAL_MS);
  flusher.unref();
  return {
    write: (lines) => {
      dest.write(lines);
    },
    reopen: () => {
      if (target !== 'stdout') dest.reopen();
    },
    close: () =>
      new Promise((resolve) => {
        clearInterval(flusher);
        try {
          dest.flushSync();
        } catch {
          // Not yet open (a file being created): end() flushes when it is.
        }
        if (target === 'stdout') return resolve();
        dest.once('close', () => resolve());
        dest.end();
      }),
  };
}

/** A missing directory is created 0700; if that fails, opening the file reports the error. */
export function ensureParent(file: string): void {
  try {
    makeParentDir(file);
  } catch {
    // The destination's open fails next and says why.
  }
}
