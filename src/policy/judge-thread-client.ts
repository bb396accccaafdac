import { Worker } from 'node:worker_threads';
import type { ErrorCode } from '../errors/registry.js';
import type { Lesson } from './engine.js';
import { FairQueue } from './fair-queue.js';
import type { FromJudgeThread, PolicyInputs, ToJudgeThread } from './judge-thread-protocol.js';
import type { JudgeContext, Judgement } from './verdict.js';

export interface JudgeThreadLogger {
  error(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

export interface JudgeThreadOptions {
  /** Judging one statement may take this long; then the thread is replaced and it is refused. */
  readonly timeoutMs: number;
}

/** Heap of the judge thread: its decision caches (two of 32 Mi characters) and the largest judgement. */
const JUDGE_THREAD_HEAP_MB = 1024;

/** Where a statement queues: its tenant, then its human, then its session. */
function pathOf(ctx: JudgeContext): unknown[] {
  return [ctx.identity.tenant, ctx.identity.human, ctx.session];
}

/** A refusal for a statement the thread did not judge: anything not understood is refused. */
function notJudged(code: ErrorCode, reason: string, message: string): Judgement {
  return {
    verdict: {
      kind: 'deny',
      code,
      message,
      ruleIds: [],
      reasons: [reason],
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

function threadFailed(why: string): Judgement {
  return notJudged(
    'PGW_INTERNAL',
    'judge_thread_failed',
    `pgwarden could not judge this statement (${why}); it was not run`,
  );
}

function tooComplex(timeoutMs: number): Judgement {
  return notJudged(
    'PGW_TOO_COMPLEX',
    'judge_timeout',
    `pgwarden could not judge this statement within ${timeoutMs} ms (limits.judgeTimeoutMs); it was not run: split it into smaller statements`,
  );
}

interface Queued {
  readonly sql: string;
  readonly ctx: JudgeContext;
  readonly stillWanted: (() => boolean) | undefined;
  readonly resolve: (answer: ThreadAnswer) => void;
}

/** A judgement with the policy in force, and what it taught the thread's caches. */
export interface ThreadAnswer {
  readonly judgement: Judgement;
  readonly lesson?: Lesson;
}

/**
 * The proxy's handle on the judge thread (judge-thread.ts). judge() never rejects: if the thread
 * dies, or takes longer than timeoutMs over one statement, that statement is refused and a new
 * thread, with the policy in force, takes the ones still queued.
 *
 * The thread judges one statement at a time. Tenants share it fairly by the judging time they
 * have used (fair-queue.ts), within a tenant its humans do, and within a human its sessions: a
 * backlog of statements slow to judge pushes back only its own tenant, human and session, and
 * another's statement waits about one turn of each other key, not for everything queued before
 * it (in a strict queue, sessions sending 100 KB INSERTs held another tenant's 4 KB SELECT for
 * 25 s; shared per session only, eight sessions of one human held another human of the same
 * tenant for 13 to 21 s). Charging by measured time, not length, also covers short statements
 * that are slow to judge.
 */
export class JudgeThread {
  private worker: Worker | undefined;
  private inputs: PolicyInputs | undefined;
  /** Counts setPolicy calls: a lesson of an older policy is not passed on. */
  private generation = 0;
  private nextId = 1;
  /**
   * Statements waiting, per tenant, human and session (its JudgeContext's session object), shared
   * fairly at each level by the judging time used.
   */
  private readonly queues = new FairQueue<Queued>(3);
  private inFlight:
    | {
        readonly id: number;
        readonly job: Queued;
        readonly path: unknown[];
        start: number;
        timer?: NodeJS.Timeout;
      }
    | undefined;
  /** The thread has loaded the parser and its policy: judging time counts from then. */
  private ready = false;
  private closed = false;

  constructor(
    private readonly logger?: JudgeThreadLogger,
    private readonly opts: JudgeThreadOptions = { timeoutMs: 3000 },
  ) {}

  /** The policy for every statement sent from now on. */
  setPolicy(inputs: PolicyInputs): void {
    this.inputs = inputs;
    this.generation++;
    this.worker?.postMessage({ type: 'policy', inputs, generation: this.generation } satisfies ToJudgeThread);
  }

  /** `stillWanted` false when its turn comes (its session ended): not judged, refused instead. */
  judge(sql: string, ctx: JudgeContext, stillWanted?: () => boolean): Promise<ThreadAnswer> {
    if (this.closed) return Promise.resolve({ judgement: threadFailed('pgwarden is shutting down') });
    return new Promise((resolve) => {
      this.queues.push(pathOf(ctx), { sql, ctx, stillWanted, resolve });
      this.next();
    });
  }

  /** Statements waiting for the thread, besides the one it is judging. */
  get queued(): number {
    return this.queues.size;
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

  /** Sends the next statement (see the class comment), if the thread is free. */
  private next(): void {
    if (this.inFlight || this.closed) return;
    // Statements of sessions that have ended are dropped unjudged: sessions that send a slow
    // statement and leave must not keep the thread busy for nobody.
    for (const job of this.queues.drop((j) => j.stillWanted?.() !== false))
      job.resolve({ judgement: threadFailed('the session ended') });
    const next = this.queues.take();
    if (next === undefined) return;
    const { job, path } = next;
    const worker = this.worker ?? this.spawn();
    const id = this.nextId++;
    this.inFlight = { id, job, path, start: performance.now() };
    if (this.ready) this.startClock();
    // A statement being judged keeps the process alive; an idle thread does not.
    worker.ref();
    worker.postMessage({ type: 'judge', id, sql: job.sql, ctx: job.ctx } satisfies ToJudgeThread);
  }

  /** Judging of the statement in flight starts counting now. */
  private startClock(): void {
    const f = this.inFlight;
    if (!f || f.timer) return;
    const id = f.id;
    f.start = performance.now();
    f.timer = setTimeout(() => this.timedOut(id), this.opts.timeoutMs);
    f.timer.unref();
  }

  /** Ends the statement being judged and charges its tenant and session for the time it took. */
  private finish(): NonNullable<JudgeThread['inFlight']> {
    const done = this.inFlight as NonNullable<JudgeThread['inFlight']>;
    this.inFlight = undefined;
    clearTimeout(done.timer);
    this.queues.charge(done.path, performance.now() - done.start);
    return done;
  }

  private timedOut(id: number): void {
    if (this.inFlight?.id !== id) return;
    const done = this.finish();
    this.logger?.warn(
      {
        event: 'judge_timeout',
        timeoutMs: this.opts.timeoutMs,
        tenant: done.job.ctx.identity.tenant,
        bytes: done.job.sql.length,
      },
      'judging a statement took too long; it was refused and the judge thread replaced',
    );
    // The thread is busy for as long as the statement takes: a new one takes the rest.
    const w = this.worker;
    this.worker = undefined;
    void w?.terminate();
    done.job.resolve({ judgement: tooComplex(this.opts.timeoutMs) });
    this.next();
  }

  private spawn(): Worker {
    if (!this.inputs) throw new Error('the judge thread has no policy yet');
    const worker = new Worker(new URL('../thread-entry.mjs', import.meta.url), {
      argv: ['policy/judge-thread'],
      execArgv: process.execArgv.filter((a) => !a.startsWith('--input-type')),
      // Judging one huge statement must not take pgwarden's memory with it: beyond this the thread
      // dies, its statement is refused, and the next one starts a fresh thread.
      resourceLimits: { maxOldGenerationSizeMb: JUDGE_THREAD_HEAP_MB },
    });
    this.worker = worker;
    this.ready = false;
    worker.unref();
    worker.postMessage({
      type: 'policy',
      inputs: this.inputs,
      generation: this.generation,
    } satisfies ToJudgeThread);
    worker.on('message', (m: FromJudgeThread) => {
      if (this.worker !== worker) return;
      if (m.type === 'ready') {
        this.ready = true;
        this.startClock();
        return;
      }
      if (this.inFlight?.id !== m.id) return;
      const done = this.finish();
      worker.unref();
      // Judged under rules replaced meanwhile: a statement the new rules refuse must not run on
      // the old ones' word, so it is judged again, first in its session's queue.
      if (m.generation === this.generation) done.job.resolve({ judgement: m.judgement, lesson: m.lesson });
      else this.queues.push(done.path, done.job, true);
      this.next();
    });
    worker.on('error', (err) => this.logger?.error({ event: 'judge_thread_failed', err: err.message }));
    worker.on('exit', (code) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      if (this.inFlight) {
        // The statement being judged is the likely cause (out of memory, say): it is refused, the
        // others get a new thread.
        this.logger?.error({ event: 'judge_thread_exited', code });
        this.finish().job.resolve({ judgement: threadFailed(`the judging thread exited with code ${code}`) });
      }
      this.next();
    });
    return worker;
  }

  private fail(reason: string): void {
    const pending: Queued[] = [];
    if (this.inFlight) pending.push(this.finish().job);
    pending.push(...this.queues.drop(() => false));
    for (const job of pending) job.resolve({ judgement: threadFailed(reason) });
  }
}
