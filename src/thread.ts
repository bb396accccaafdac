import { Worker, type WorkerOptions } from 'node:worker_threads';

/** pgwarden's worker thread modules (thread-entry.mjs loads them). */
export type ThreadModule = 'policy/judge-thread' | 'audit/shipper-thread';

/**
 * Starts one of pgwarden's worker threads. It takes the main thread's Node.js flags (a CPU profile
 * then covers it too) except those a worker cannot have: `--input-type` belongs to the main
 * entry, and V8's process-wide flags (`--max-old-space-size`, common in production) make Node
 * refuse the whole list, which left a pgwarden started with one unable to judge or log anything.
 * Node names no public list of those, so a refused list is dropped whole and the thread starts
 * with none.
 */
export function startThread(module: ThreadModule, options: Omit<WorkerOptions, 'argv' | 'execArgv'>): Worker {
  const entry = new URL('./thread-entry.mjs', import.meta.url);
  const argv = [module];
  try {
    return new Worker(entry, { ...options, argv, execArgv: inheritedFlags() });
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw err;
    return new Worker(entry, { ...options, argv, execArgv: [] });
  }
}

function inheritedFlags(): string[] {
  return process.execArgv.filter((a) => !a.startsWith('--input-type'));
}
