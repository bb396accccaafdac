import { describe, expect, it } from 'vitest';
import { judgeContext } from '../../test/support/judge-context.js';
import { loadDemoPolicy } from '../../test/support/demo-policy.js';
import { JudgeThread } from './judge-thread-client.js';

const ctx = judgeContext('acme');
/** A parent-scoped multi-row INSERT: every row gets its own guard, so judging takes long. */
const longInsert = `INSERT INTO order_items (order_id, sku, qty) VALUES ${Array.from(
  { length: 2000 },
  (_, i) => `(${i}, 'SKU-${i}', 1)`,
).join(', ')}`;

describe('the judge thread', () => {
  it('refuses the statements it held when it dies, and the next statement gets a new thread', async () => {
    const demo = await loadDemoPolicy();
    const thread = new JudgeThread();
    thread.setPolicy({ rules: demo.rules, catalog: demo.catalog, searchPath: 'public' });
    try {
      const held = thread.judge(longInsert, ctx);
      await thread.crash();
      expect((await held).verdict).toMatchObject({
        kind: 'deny',
        code: 'PGW_INTERNAL',
        reasons: ['judge_thread_failed'],
      });
      const next = await thread.judge('SELECT total FROM orders WHERE id = 1', ctx);
      expect(next.verdict.kind).toBe('rewrite');
    } finally {
      await thread.close();
    }
  });

  it('refuses everything once closed', async () => {
    const demo = await loadDemoPolicy();
    const thread = new JudgeThread();
    thread.setPolicy({ rules: demo.rules, catalog: demo.catalog, searchPath: 'public' });
    await thread.close();
    expect((await thread.judge('SELECT 1', ctx)).verdict.kind).toBe('deny');
  });
});
