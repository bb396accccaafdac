import { Worker } from 'node:worker_threads';
import type { FromJudgeThread, PolicyInputs, ToJudgeThread } from './judge-thread-protocol.js';
import type { JudgeContext, Judgement } from './verdict.js';

export interface JudgeThreadLogger {
  error(o: object, m?: string): void;
}

/** Heap of the judge thread: its decision caches (two of 32 Mi characters) and the largest judgement. */
const JUDGE_THREAD_HEAP_MB = 1024;

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
 * Judging time a statement may expect per byte of SQL, for ordering only: the worst case measured
 * (a multi-row INSERT into a parent-scoped table, bench/judge.ts); most SQL takes a tenth of it.
 */
const EXPECTED_MICROS_PER_BYTE = 10;

interface Queued {
  readonly sql: string;
  readonly ctx: JudgeContext;
  /** When its judging should be over, had it the thread to itself: arrival plus expected time. */
  readonly deadline: number;
  readonly resolve: (j: Judgement) => void;
}

/**
 * The proxy's handle on the judge thread (judge-thread.ts). judge() never rejects: if the thread
 * dies, the statement it was judging is refused and a new thread, with the policy in force, takes
 * the ones still queued.
 *
 * The thread judges one statement at a time, earliest deadline first: a short statement does not
 * wait behind other sessions' long ones (sessions sending 100 KB statements held another tenant's
 * 4 KB SELECT for 25 s in a strict queue), and a long one is not starved, since the deadlines of
 * the short ones that arrive later move on with the clock.
 */
export class JudgeThread {
  private worker: Worker | undefined;
  private inputs: PolicyInputs | undefined;
  private nextId = 1;
  private readonly queue: Queued[] = [];
  private inFlight: { readonly id: number; readonly job: Queued } | undefined;
  private closed = false;

  constructor(private readonly logger?: JudgeThreadLogger) {}

  /** The policy for every statement sent from now on. */
  setPolicy(inputs: PolicyInputs): void {
    this.inputs = inputs;
    this.worker?.postMessage({ type: 'policy', inputs } satisfies ToJudgeThread);
  }

  judge(sql: string, ctx: JudgeContext): Promise<Judgement> {
    if (this.closed) return Promise.resolve(threadFailed('pgwarden is shutting down'));
    return new Promise((resolve) => {
      const deadline = performance.now() + (sql.length * EXPECTED_MICROS_PER_BYTE) / 1000;
      this.queue.push({ sql, ctx, deadline, resolve });
      this.next();
    });
  }

  /** Statements waiting for the thread, besides the one it is judging. */
  get queued(): number {
    return this.queue.length;
  }

  /** Sends the queued statement with the earliest deadline, if the thread is free. */
  private next(): void {
    if (this.inFlight || this.queue.length === 0 || this.closed) return;
    let best = 0;
    for (let i = 1; i < this.queue.length; i++)
      if ((this.queue[i] as Queued).deadline < (this.queue[best] as Queued).deadline) best = i;
    const job = this.queue.splice(best, 1)[0] as Queued;
    const worker = this.worker ?? this.spawn();
    const id = this.nextId++;
    this.inFlight = { id, job };
    // A statement being judged keeps the process alive; an idle thread does not.
    worker.ref();
    worker.postMessage({ type: 'judge', id, sql: job.sql, ctx: job.ctx } satisfies ToJudgeThread);
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
      // Judging one huge statement must not take pgwarden's memory with it: beyond this the thread
      // dies, its statements are refused, and the next one starts a fresh thread.
      resourceLimits: { maxOldGenerationSizeMb: JUDGE_THREAD_HEAP_MB },
    });
    this.worker = worker;
    worker.unref();
    worker.postMessage({ type: 'policy', inputs: this.inputs } satisfies ToJudgeThread);
    worker.on('message', (m: FromJudgeThread) => {
      const done = this.inFlight;
      if (done?.id !== m.id) return;
      this.inFlight = undefined;
      worker.unref();
      done.job.resolve(m.judgement);
      this.next();
    });
    worker.on('error', (err) => this.logger?.error({ event: 'judge_thread_failed', err: err.message }));
    worker.on('exit', (code) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      const lost = this.inFlight;
      this.inFlight = undefined;
      if (lost) {
        // The statement being judged is the likely cause (out of memory, say): it is refused, the
        // others get a new thread.
        this.logger?.error({ event: 'judge_thread_exited', code });
        lost.job.resolve(threadFailed(`the judging thread exited with code ${code}`));
      }
      this.next();
    });
    return worker;
  }

  private fail(reason: string): void {
    const pending = this.queue.splice(0);
    const lost = this.inFlight;
    this.inFlight = undefined;
    if (lost) pending.unshift(lost.job);
    for (const job of pending) job.resolve(threadFailed(reason));
  }
}
