import type { Worker } from 'node:worker_threads';
import type { ErrorCode } from '../errors/registry.js';
import { startThread } from '../thread.js';
import type { Lesson } from './engine.js';
import { FairQueue } from './fair-queue.js';
import type { FromJudgeThread, PolicyInputs, ToJudgeThread } from './judge-thread-protocol.js';
import type { JudgeContext, Judgement } from './verdict.js';

export interface JudgeThreadLogger {
  error(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

export interface JudgeThreadOptions {
  /** Judging one statement may take this long; then its thread is replaced and it is refused. */
  readonly timeoutMs: number;
  /** Threads judging at once (limits.judgeThreadCount); default 1. */
  readonly threads?: number;
  /** The threads' stack (Node's default otherwise); the tests make it small to exhaust it. */
  readonly stackSizeMb?: number;
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

interface InFlight {
  readonly id: number;
  readonly job: Queued;
  readonly path: unknown[];
  start: number;
  timer?: NodeJS.Timeout;
}

/** One judge thread (started when first needed, replaced when it dies or times out). */
interface Slot {
  worker: Worker | undefined;
  /** The thread has loaded the parser and its policy: judging time counts from then. */
  ready: boolean;
  inFlight: InFlight | undefined;
}

/**
 * The proxy's handle on its judge threads (judge-thread.ts). judge() never rejects: if a thread
 * dies, or takes longer than timeoutMs over one statement, that statement is refused and a new
 * thread, with the policy in force, takes its place.
 *
 * Each thread judges one statement at a time. Tenants share the threads fairly by the judging
 * time they have used (fair-queue.ts), within a tenant its humans do, and within a human its
 * sessions: a backlog of statements slow to judge pushes back only its own tenant, human and
 * session, and another's statement waits about one turn of each other key, not for everything
 * queued before it (in a strict queue, sessions sending 100 KB INSERTs held another tenant's 4 KB
 * SELECT for 25 s; shared per session only, eight sessions of one human held another human of the
 * same tenant for 13 to 21 s). Charging by measured time, not length, also covers short statements
 * that are slow to judge.
 *
 * With more than one thread, a tenant holds at most all but one of them: another tenant's new
 * statement then starts at once instead of waiting for the statement being judged (one cold
 * 120 KB INSERT into a parent-scoped table takes seconds; with one thread, every other tenant's
 * new statements waited that long).
 */
export class JudgeThreads {
  private inputs: PolicyInputs | undefined;
  /** Counts setPolicy calls: a lesson of an older policy is not passed on. */
  private generation = 0;
  private nextId = 1;
  /**
   * Statements waiting, per tenant, human and session (its JudgeContext's session object), shared
   * fairly at each level by the judging time used.
   */
  private readonly queues = new FairQueue<Queued>(3);
  private readonly slots: Slot[];
  /** Threads each tenant's statements hold now. */
  private readonly holding = new Map<unknown, number>();
  private readonly perTenant: number;
  private closed = false;

  constructor(
    private readonly logger?: JudgeThreadLogger,
    private readonly opts: JudgeThreadOptions = { timeoutMs: 3000 },
  ) {
    const n = Math.max(1, opts.threads ?? 1);
    this.slots = Array.from({ length: n }, () => ({ worker: undefined, ready: false, inFlight: undefined }));
    this.perTenant = Math.max(1, n - 1);
  }

  /** The policy for every statement sent from now on. */
  setPolicy(inputs: PolicyInputs): void {
    this.inputs = inputs;
    this.generation++;
    const m = { type: 'policy', inputs, generation: this.generation } satisfies ToJudgeThread;
    for (const slot of this.slots) slot.worker?.postMessage(m);
  }

  /** `stillWanted` false when its turn comes (its session ended): not judged, refused instead. */
  judge(sql: string, ctx: JudgeContext, stillWanted?: () => boolean): Promise<ThreadAnswer> {
    if (this.closed) return Promise.resolve({ judgement: threadFailed('pgwarden is shutting down') });
    return new Promise((resolve) => {
      this.queues.push(pathOf(ctx), { sql, ctx, stillWanted, resolve });
      this.next();
    });
  }

  /** Statements waiting for a thread, besides those being judged. */
  get queued(): number {
    return this.queues.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    const workers = this.slots.map((s) => s.worker);
    for (const slot of this.slots) slot.worker = undefined;
    this.fail('pgwarden is shutting down');
    await Promise.all(workers.map((w) => w?.terminate()));
  }

  /** For tests: the threads die as if they had crashed. */
  async crash(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker?.terminate()));
  }

  /** Sends the next statements (see the class comment) to the threads that are free. */
  private next(): void {
    if (this.closed) return;
    // Statements of sessions that have ended are dropped unjudged: sessions that send a slow
    // statement and leave must not keep a thread busy for nobody.
    for (const job of this.queues.drop((j) => j.stillWanted?.() !== false))
      job.resolve({ judgement: threadFailed('the session ended') });
    for (const slot of this.slots) {
      if (slot.inFlight) continue;
      const next = this.queues.take((tenant) => (this.holding.get(tenant) ?? 0) < this.perTenant);
      if (next === undefined) return;
      this.send(slot, next.job, next.path);
    }
  }

  private send(slot: Slot, job: Queued, path: unknown[]): void {
    const worker = slot.worker ?? this.spawn(slot);
    const id = this.nextId++;
    slot.inFlight = { id, job, path, start: performance.now() };
    this.holding.set(path[0], (this.holding.get(path[0]) ?? 0) + 1);
    if (slot.ready) this.startClock(slot);
    // A statement being judged keeps the process alive; an idle thread does not.
    worker.ref();
    worker.postMessage({ type: 'judge', id, sql: job.sql, ctx: job.ctx } satisfies ToJudgeThread);
  }

  /** Judging of the slot's statement starts counting now. */
  private startClock(slot: Slot): void {
    const f = slot.inFlight;
    if (!f || f.timer) return;
    const id = f.id;
    f.start = performance.now();
    f.timer = setTimeout(() => this.timedOut(slot, id), this.opts.timeoutMs);
    f.timer.unref();
  }

  /** Ends the slot's statement and charges its tenant, human and session for the time it took. */
  private finish(slot: Slot): InFlight {
    const done = slot.inFlight as InFlight;
    slot.inFlight = undefined;
    clearTimeout(done.timer);
    const tenant = done.path[0];
    const held = (this.holding.get(tenant) ?? 1) - 1;
    if (held > 0) this.holding.set(tenant, held);
    else this.holding.delete(tenant);
    this.queues.charge(done.path, performance.now() - done.start);
    return done;
  }

  private timedOut(slot: Slot, id: number): void {
    if (slot.inFlight?.id !== id) return;
    const done = this.finish(slot);
    this.logger?.warn(
      {
        event: 'judge_timeout',
        timeoutMs: this.opts.timeoutMs,
        tenant: done.job.ctx.identity.tenant,
        bytes: done.job.sql.length,
      },
      'judging a statement took too long; it was refused and the judge thread replaced',
    );
    // The thread is busy for as long as the statement takes: a new one takes its place.
    const w = slot.worker;
    slot.worker = undefined;
    void w?.terminate();
    done.job.resolve({ judgement: tooComplex(this.opts.timeoutMs) });
    this.next();
  }

  private spawn(slot: Slot): Worker {
    if (!this.inputs) throw new Error('the judge thread has no policy yet');
    const worker = startThread('policy/judge-thread', {
      // Judging one huge statement must not take pgwarden's memory with it: beyond this the thread
      // dies, its statement is refused, and the next one starts a fresh thread.
      resourceLimits: {
        maxOldGenerationSizeMb: JUDGE_THREAD_HEAP_MB,
        ...(this.opts.stackSizeMb === undefined ? {} : { stackSizeMb: this.opts.stackSizeMb }),
      },
    });
    slot.worker = worker;
    slot.ready = false;
    worker.unref();
    worker.postMessage({
      type: 'policy',
      inputs: this.inputs,
      generation: this.generation,
    } satisfies ToJudgeThread);
    worker.on('message', (m: FromJudgeThread) => {
      if (slot.worker !== worker) return;
      if (m.type === 'ready') {
        slot.ready = true;
        this.startClock(slot);
        return;
      }
      if (slot.inFlight?.id !== m.id) return;
      const done = this.finish(slot);
      worker.unref();
      if (m.retire) {
        this.logger?.error(
          {
            event: 'judge_thread_parser_lost',
            tenant: done.job.ctx.identity.tenant,
            bytes: done.job.sql.length,
          },
          "a statement exhausted the SQL parser's stack; it was refused and the judge thread replaced",
        );
        slot.worker = undefined;
        void worker.terminate();
      }
      // Judged under rules replaced meanwhile: a statement the new rules refuse must not run on
      // the old ones' word, so it is judged again, first in its session's queue.
      if (m.generation === this.generation) done.job.resolve({ judgement: m.judgement, lesson: m.lesson });
      else this.queues.push(done.path, done.job, true);
      this.next();
    });
    worker.on('error', (err) => this.logger?.error({ event: 'judge_thread_failed', err: err.message }));
    worker.on('exit', (code) => {
      if (slot.worker !== worker) return;
      slot.worker = undefined;
      if (slot.inFlight) {
        // The statement being judged is the likely cause (out of memory, say): it is refused, the
        // others get a new thread.
        this.logger?.error({ event: 'judge_thread_exited', code });
        this.finish(slot).job.resolve({
          judgement: threadFailed(`the judging thread exited with code ${code}`),
        });
      }
      this.next();
    });
    return worker;
  }

  private fail(reason: string): void {
    const pending: Queued[] = [];
    for (const slot of this.slots) if (slot.inFlight) pending.push(this.finish(slot).job);
    pending.push(...this.queues.drop(() => false));
    for (const job of pending) job.resolve({ judgement: threadFailed(reason) });
  }
}
