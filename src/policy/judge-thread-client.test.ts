import { describe, expect, it } from 'vitest';
import { judgeContext } from '../../test/support/judge-context.js';
import { loadDemoPolicy } from '../../test/support/demo-policy.js';
import { JudgeThreads } from './judge-thread-client.js';

const ctx = judgeContext('acme');
/** A parent-scoped multi-row INSERT: every row gets its own guard, so judging takes long. */
const longInsert = `INSERT INTO order_items (order_id, sku, qty) VALUES ${Array.from(
  { length: 4000 },
  (_, i) => `(${i}, 'SKU-${i}', 1)`,
).join(', ')}`;

describe('the judge thread', () => {
  it('refuses the statements it held when it dies, and the next statement gets a new thread', async () => {
    const demo = await loadDemoPolicy();
    const thread = new JudgeThreads(undefined, { timeoutMs: 60_000 });
    thread.setPolicy({ rules: demo.rules, catalog: demo.catalog, searchPath: 'public' });
    try {
      const held = thread.judge(longInsert, ctx);
      await thread.crash();
      expect((await held).judgement.verdict).toMatchObject({
        kind: 'deny',
        code: 'PGW_INTERNAL',
        reasons: ['judge_thread_failed'],
      });
      const next = await thread.judge('SELECT total FROM orders WHERE id = 1', ctx);
      expect(next.judgement.verdict.kind).toBe('rewrite');
    } finally {
      await thread.close();
    }
  });

  it("judges another tenant's statement before the backlog of long ones that came first", async () => {
    const demo = await loadDemoPolicy();
    const thread = new JudgeThreads(undefined, { timeoutMs: 60_000 });
    thread.setPolicy({ rules: demo.rules, catalog: demo.catalog, searchPath: 'public' });
    try {
      // The attack: sessions queue long statements; another tenant's short SELECT arrives last.
      const order: string[] = [];
      const longs = [1, 2, 3, 4].map((i) => thread.judge(longInsert, ctx).then(() => order.push(`long${i}`)));
      const short = thread
        .judge('SELECT total FROM orders WHERE id = 1', judgeContext('globex'))
        .then((j) => {
          order.push('short');
          return j;
        });
      expect((await short).judgement.verdict.kind).toBe('rewrite');
      await Promise.all(longs);
      // Only the statement already on the thread goes first.
      expect(order).toEqual(['long1', 'short', 'long2', 'long3', 'long4']);
    } finally {
      await thread.close();
    }
  });

  it("with two threads, judges another tenant's new statement while one tenant's slow one is judged", async () => {
    const demo = await loadDemoPolicy();
    const threads = new JudgeThreads(undefined, { timeoutMs: 60_000, threads: 2 });
    threads.setPolicy({ rules: demo.rules, catalog: demo.catalog, searchPath: 'public' });
    try {
      // Both threads started (loading the parser takes a while), so only judging is compared.
      await Promise.all([threads.judge('SELECT 1', ctx), threads.judge('SELECT 2', judgeContext('globex'))]);
      // The attack (red team F3): one tenant's statements, each slow to judge, would hold every
      // other tenant's new statements for as long as judging one takes.
      const order: string[] = [];
      const longs = [1, 2, 3].map((i) => threads.judge(longInsert, ctx).then(() => order.push(`long${i}`)));
      // A tenant holds all threads but one: its backlog goes one at a time.
      expect(threads.queued).toBe(2);
      const short = threads
        .judge('SELECT total FROM orders WHERE id = 1', judgeContext('globex'))
        .then((j) => {
          order.push('short');
          return j;
        });
      expect(threads.queued).toBe(2);
      expect((await short).judgement.verdict.kind).toBe('rewrite');
      await Promise.all(longs);
      expect(order).toEqual(['short', 'long1', 'long2', 'long3']);
    } finally {
      await threads.close();
    }
  });

  it('lets a tenant use all threads but one, and the last one serves the other tenants', async () => {
    const demo = await loadDemoPolicy();
    const threads = new JudgeThreads(undefined, { timeoutMs: 60_000, threads: 3 });
    threads.setPolicy({ rules: demo.rules, catalog: demo.catalog, searchPath: 'public' });
    try {
      const acme = [1, 2, 3, 4].map(() => threads.judge(longInsert, ctx));
      expect(threads.queued).toBe(2);
      const globex = [1, 2].map(() => threads.judge(longInsert, judgeContext('globex')));
      // One globex statement took the third thread; the other waits with acme's.
      expect(threads.queued).toBe(3);
      for (const j of await Promise.all([...acme, ...globex]))
        expect(j.judgement.verdict.kind).toBe('rewrite');
    } finally {
      await threads.close();
    }
  });

  it("judges another session's statement of the same tenant before one session's backlog", async () => {
    const demo = await loadDemoPolicy();
    const thread = new JudgeThreads(undefined, { timeoutMs: 60_000 });
    thread.setPolicy({ rules: demo.rules, catalog: demo.catalog, searchPath: 'public' });
    try {
      // The attack: one agent's session queues slow statements; another agent of acme comes after.
      const order: string[] = [];
      const longs = [1, 2, 3].map((i) => thread.judge(longInsert, ctx).then(() => order.push(`long${i}`)));
      const other = judgeContext('acme', { agent: 'other-bot' });
      const short = thread
        .judge('SELECT total FROM orders WHERE id = 1', other)
        .then(() => order.push('short'));
      await Promise.all([...longs, short]);
      expect(order).toEqual(['long1', 'short', 'long2', 'long3']);
    } finally {
      await thread.close();
    }
  });

  it("judges another human's statement before the backlog of one human's many sessions", async () => {
    const demo = await loadDemoPolicy();
    const thread = new JudgeThreads(undefined, { timeoutMs: 60_000 });
    thread.setPolicy({ rules: demo.rules, catalog: demo.catalog, searchPath: 'public' });
    try {
      // The attack (red team): one human of acme keeps a slow statement queued in each of several
      // sessions; another human of acme comes last. Shared per session, it waited for all of them.
      const order: string[] = [];
      const longs = [1, 2, 3, 4].map((i) =>
        thread
          .judge(longInsert, judgeContext('acme', { human: 'mallory@acme.test' }))
          .then(() => order.push(`long${i}`)),
      );
      const short = thread
        .judge('SELECT total FROM orders WHERE id = 1', judgeContext('acme', { human: 'alice@acme.test' }))
        .then(() => order.push('short'));
      await Promise.all([...longs, short]);
      expect(order).toEqual(['long1', 'short', 'long2', 'long3', 'long4']);
    } finally {
      await thread.close();
    }
  });

  it("does not starve a tenant's long statement while another tenant's short ones keep coming", async () => {
    const demo = await loadDemoPolicy();
    const thread = new JudgeThreads(undefined, { timeoutMs: 60_000 });
    thread.setPolicy({ rules: demo.rules, catalog: demo.catalog, searchPath: 'public' });
    try {
      let longDone = false;
      void thread.judge(longInsert, ctx);
      const long = thread.judge(longInsert, ctx).then((j) => {
        longDone = true;
        return j;
      });
      // A stream of short statements, one more as each is answered, until the long one is judged.
      let shorts = 0;
      const stream = async (): Promise<void> => {
        while (!longDone) {
          await thread.judge(`SELECT total FROM orders WHERE id = ${shorts++}`, judgeContext('globex'));
        }
      };
      await Promise.all([stream(), stream(), long]);
      expect((await long).judgement.verdict.kind).toBe('rewrite');
      // It got about its share: the short ones went ahead until they had used as many bytes.
      expect(shorts).toBeGreaterThan(100);
    } finally {
      await thread.close();
    }
  });

  it('passes on what a judgement taught its caches, and judges again a statement judged under replaced rules', async () => {
    const demo = await loadDemoPolicy();
    const thread = new JudgeThreads(undefined, { timeoutMs: 60_000 });
    thread.setPolicy({ rules: demo.rules, catalog: demo.catalog, searchPath: 'public' });
    try {
      const taught = await thread.judge('SELECT total FROM orders WHERE id = 7', ctx);
      expect(taught.lesson?.exact?.key).toContain('SELECT total FROM orders WHERE id = 7');
      expect(taught.lesson?.shape).toBeDefined();
      // A reload while a statement is judged: the old rules' judgement is not used, nor what it
      // taught; the statement is judged again under the new rules (which deny orders.total).
      const during = thread.judge('SELECT total FROM orders WHERE id = 8 AND total > 1', ctx);
      const orders = { ...demo.rules.tables['public.orders']!, columns: { deny: ['total'], mask: {} } };
      const tables = { ...demo.rules.tables, 'public.orders': orders };
      thread.setPolicy({ rules: { ...demo.rules, tables }, catalog: demo.catalog, searchPath: 'public' });
      const answer = await during;
      expect(answer.judgement.verdict).toMatchObject({
        kind: 'deny',
        code: 'PGW_POLICY_DENIED',
        message: expect.stringContaining('total'),
      });
      expect(answer.lesson?.exact?.entry.verdict.kind).toBe('deny');
    } finally {
      await thread.close();
    }
  });

  it('refuses a statement it cannot judge within timeoutMs (54001) and goes on with a new thread', async () => {
    const demo = await loadDemoPolicy();
    const thread = new JudgeThreads(undefined, { timeoutMs: 300 });
    thread.setPolicy({ rules: demo.rules, catalog: demo.catalog, searchPath: 'public' });
    try {
      // The benign look-alike first: a statement judged in time (the thread's start-up, loading
      // the parser, does not count).
      const quick = await thread.judge('SELECT total FROM orders WHERE id = 1', ctx);
      expect(quick.judgement.verdict.kind).toBe('rewrite');
      // The attack: one statement that takes long to judge, and another tenant's behind it.
      const slow = thread.judge(longInsert, ctx);
      const behind = thread.judge('SELECT total FROM orders WHERE id = 2', judgeContext('globex'));
      expect((await slow).judgement.verdict).toMatchObject({
        kind: 'deny',
        code: 'PGW_TOO_COMPLEX',
        reasons: ['judge_timeout'],
      });
      expect((await behind).judgement.verdict.kind).toBe('rewrite');
    } finally {
      await thread.close();
    }
  });

  it('drops unjudged the statements of sessions that ended while they waited', async () => {
    const demo = await loadDemoPolicy();
    const thread = new JudgeThreads(undefined, { timeoutMs: 60_000 });
    thread.setPolicy({ rules: demo.rules, catalog: demo.catalog, searchPath: 'public' });
    try {
      // The attack: sessions send a statement slow to judge and leave at once, over and over.
      const busy = thread.judge(longInsert, ctx);
      let open = true;
      const left = [1, 2, 3].map(() => thread.judge(longInsert, ctx, () => open));
      const stays = thread.judge('SELECT total FROM orders WHERE id = 1', judgeContext('globex'), () => true);
      open = false;
      for (const l of left)
        expect((await l).judgement.verdict).toMatchObject({ kind: 'deny', reasons: ['judge_thread_failed'] });
      // The benign look-alike: a session still open gets its judgement.
      expect((await stays).judgement.verdict.kind).toBe('rewrite');
      expect((await busy).judgement.verdict.kind).toBe('rewrite');
      expect(thread.queued).toBe(0);
    } finally {
      await thread.close();
    }
  });

  it('refuses everything once closed', async () => {
    const demo = await loadDemoPolicy();
    const thread = new JudgeThreads(undefined, { timeoutMs: 60_000 });
    thread.setPolicy({ rules: demo.rules, catalog: demo.catalog, searchPath: 'public' });
    await thread.close();
    expect((await thread.judge('SELECT 1', ctx)).judgement.verdict.kind).toBe('deny');
  });

  it('replaces a thread whose parser ran out of stack, and refuses the statement with 54001 (red team, round 45)', async () => {
    // The nesting estimate (sql/nesting.ts) off and a small stack: the parser runs out of it, the
    // last line of defence behind that check.
    const demo = await loadDemoPolicy();
    const events: string[] = [];
    const logger = { warn: () => {}, error: (o: object) => events.push((o as { event: string }).event) };
    const thread = new JudgeThreads(logger, { timeoutMs: 60_000, stackSizeMb: 0.5 });
    thread.setPolicy({
      rules: demo.rules,
      catalog: demo.catalog,
      searchPath: 'public',
      maxNestingEstimate: Number.POSITIVE_INFINITY,
    });
    const nested = `SELECT ${'(SELECT '.repeat(1400)}1${')'.repeat(1400)}`;
    try {
      for (let i = 0; i < 3; i++) {
        const j = await thread.judge(nested, ctx);
        expect(j.judgement.verdict).toMatchObject({
          kind: 'deny',
          code: 'PGW_TOO_COMPLEX',
          reasons: ['parser_stack_exhausted'],
        });
        // Not remembered: the thread's caches taught nothing about it.
        expect(j.lesson).toEqual({});
        // A new thread, with a parser of its own, judges the next statement.
        expect(
          (await thread.judge(`SELECT total FROM orders WHERE id = ${i}`, ctx)).judgement.verdict.kind,
        ).toBe('rewrite');
      }
      expect(events).toEqual([
        'judge_thread_parser_lost',
        'judge_thread_parser_lost',
        'judge_thread_parser_lost',
      ]);
    } finally {
      await thread.close();
    }
  });
});
