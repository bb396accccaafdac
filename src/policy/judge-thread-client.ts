import { Worker } from 'node:worker_threads';
import type { Lesson } from './engine.js';
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

interface Queued {
  readonly sql: string;
  readonly ctx: JudgeContext;
  /** Its place in the fair queue: when it would be done if every tenant had an equal share. */
  readonly finish: number;
  readonly resolve: (answer: ThreadAnswer) => void;
}

/** A judgement, and what it taught the thread's caches if it was judged with the policy in force. */
export interface ThreadAnswer {
  readonly judgement: Judgement;
  readonly lesson?: Lesson;
}

/**
 * The proxy's handle on the judge thread (judge-thread.ts). judge() never rejects: if the thread
 * dies, the statement it was judging is refused and a new thread, with the policy in force, takes
 * the ones still queued.
 *
 * The thread judges one statement at a time, in fair-queuing order between tenants (each statement
 * costs its length): a tenant with a backlog of long statements pushes only its own statements
 * back, and another tenant's statement waits for at most the one being judged. In a strict queue,
 * sessions sending 100 KB INSERTs held another tenant's 4 KB SELECT for 25 s. Within a tenant,
 * statements keep the order they came in.
 */
export class JudgeThread {
  private worker: Worker | undefined;
  private inputs: PolicyInputs | undefined;
  /** Counts setPolicy calls: a lesson of an older policy is not passed on. */
  private generation = 0;
  private nextId = 1;
  private readonly queue: Queued[] = [];
  private inFlight: { readonly id: number; readonly job: Queued } | undefined;
  /** The fair queue's clock: the finish tag of the statement sent last. */
  private now = 0;
  /** Per tenant, the finish tag of its last queued statement, while it is ahead of the clock. */
  private readonly lastFinish = new Map<string, number>();
  private closed = false;

  constructor(private readonly logger?: JudgeThreadLogger) {}

  /** The policy for every statement sent from now on. */
  setPolicy(inputs: PolicyInputs): void {
    this.inputs = inputs;
    this.generation++;
    this.worker?.postMessage({ type: 'policy', inputs, generation: this.generation } satisfies ToJudgeThread);
  }

  judge(sql: string, ctx: JudgeContext): Promise<ThreadAnswer> {
    if (this.closed) return Promise.resolve({ judgement: threadFailed('pgwarden is shutting down') });
    const tenant = ctx.identity.tenant;
    const finish = Math.max(this.now, this.lastFinish.get(tenant) ?? 0) + sql.length;
    this.lastFinish.set(tenant, finish);
    return new Promise((resolve) => {
      this.queue.push({ sql, ctx, finish, resolve });
      this.next();
    });
  }

  /** Statements waiting for the thread, besides the one it is judging. */
  get queued(): number {
    return this.queue.length;
  }

  /** Sends the queued statement with the smallest finish tag, if the thread is free. */
  private next(): void {
    if (this.inFlight || this.queue.length === 0 || this.closed) return;
    let best = 0;
    for (let i = 1; i < this.queue.length; i++)
      if ((this.queue[i] as Queued).finish < (this.queue[best] as Queued).finish) best = i;
    const job = this.queue.splice(best, 1)[0] as Queued;
    this.now = job.finish;
    // Tenants whose statements are all behind the clock start afresh from it.
    for (const [tenant, finish] of this.lastFinish) if (finish <= this.now) this.lastFinish.delete(tenant);
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
    worker.postMessage({
      type: 'policy',
      inputs: this.inputs,
      generation: this.generation,
    } satisfies ToJudgeThread);
    worker.on('message', (m: FromJudgeThread) => {
      const done = this.inFlight;
      if (done?.id !== m.id) return;
      this.inFlight = undefined;
      worker.unref();
      done.job.resolve(
        m.generation === this.generation
          ? { judgement: m.judgement, lesson: m.lesson }
          : { judgement: m.judgement },
      );
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
        lost.job.resolve({ judgement: threadFailed(`the judging thread exited with code ${code}`) });
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
    for (const job of pending) job.resolve({ judgement: threadFailed(reason) });
  }
}
