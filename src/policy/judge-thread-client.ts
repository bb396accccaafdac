import { Worker } from 'node:worker_threads';
import type { FromJudgeThread, PolicyInputs, ToJudgeThread } from './judge-thread-protocol.js';
import type { JudgeContext, Judgement } from './verdict.js';

export interface JudgeThreadLogger {
  error(o: object, m?: string): void;
}

/** The verdict for a statement whose judging thread died: refused, as anything not understood. */
function threadFailed(reason: string): Judgement {
  return {
    verdict: {
      kind: 'deny',
      code: 'PGW_INTERNAL',
      message: `pgwarden could not judge this statement (${reason}); it was not run`,
      ruleIds: [],
      reasons: ['judge_thread_failed'],
      tables: [],
      columns: [],
      flags: [],
      statementKinds: [],
    },
    fingerprint: '',
    judgeMicros: 0,
    cached: false,
  };
}

/**
 * The proxy's handle on the judge thread (judge-thread.ts). judge() never rejects: if the thread
 * dies, the statements it held are refused and the next statement starts a new thread with the
 * policy in force.
 */
export class JudgeThread {
  private worker: Worker | undefined;
  private inputs: PolicyInputs | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, (j: Judgement) => void>();
  private closed = false;

  constructor(private readonly logger?: JudgeThreadLogger) {}

  /** The policy for every statement sent from now on. */
  setPolicy(inputs: PolicyInputs): void {
    this.inputs = inputs;
    this.worker?.postMessage({ type: 'policy', inputs } satisfies ToJudgeThread);
  }

  judge(sql: string, ctx: JudgeContext): Promise<Judgement> {
    if (this.closed) return Promise.resolve(threadFailed('pgwarden is shutting down'));
    const worker = this.worker ?? this.spawn();
    const id = this.nextId++;
    // A statement waiting for its verdict keeps the process alive; an idle thread does not.
    if (this.waiting.size === 0) worker.ref();
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      worker.postMessage({ type: 'judge', id, sql, ctx } satisfies ToJudgeThread);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    this.fail('pgwarden is shutting down');
    await w?.terminate();
  }

  /** For tests: the thread dies as if it had crashed. */
  async crash(): Promise<void> {
    await this.worker?.terminate();
  }

  private spawn(): Worker {
    if (!this.inputs) throw new Error('the judge thread has no policy yet');
    const worker = new Worker(new URL('../thread-entry.mjs', import.meta.url), {
      argv: ['policy/judge-thread'],
      execArgv: process.execArgv.filter((a) => !a.startsWith('--input-type')),
    });
    this.worker = worker;
    worker.unref();
    worker.postMessage({ type: 'policy', inputs: this.inputs } satisfies ToJudgeThread);
    worker.on('message', (m: FromJudgeThread) => {
      const resolve = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (this.waiting.size === 0) worker.unref();
      resolve?.(m.judgement);
    });
    worker.on('error', (err) => this.logger?.error({ event: 'judge_thread_failed', err: err.message }));
    worker.on('exit', (code) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      if (this.waiting.size > 0) this.logger?.error({ event: 'judge_thread_exited', code });
      this.fail(`the judging thread exited with code ${code}`);
    });
    return worker;
  }

  private fail(reason: string): void {
    const pending = [...this.waiting.values()];
    this.waiting.clear();
    for (const resolve of pending) resolve(threadFailed(reason));
  }
}
