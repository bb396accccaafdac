import pino from 'pino';

export interface NdjsonOutput {
  write(lines: string): void;
  close(): Promise<void>;
}

/**
 * The SIEM stream: the same lines as the spool, already in pino's line format, written through
 * pino's asynchronous destination (sonic-boom) so a slow stdout never blocks a statement.
 */
export function openNdjson(target: string): NdjsonOutput {
  if (target === 'off') return { write: () => {}, close: async () => {} };
  const dest = pino.destination({
    dest: target === 'stdout' ? 1 : target,
    sync: false,
    mkdir: target !== 'stdout',
    minLength: 4096,
  });
  return {
    write: (lines) => {
      dest.write(lines);
    },
    close: () =>
      new Promise((resolve) => {
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
