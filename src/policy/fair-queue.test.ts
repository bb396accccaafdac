import { describe, expect, it } from 'vitest';
import { FairQueue } from './fair-queue.js';

/** Takes every job, charging each `ms(job)`, and returns them in the order served. */
function serveAll<J>(q: FairQueue<J>, ms: (job: J) => number): J[] {
  const order: J[] = [];
  for (let t = q.take(); t; t = q.take()) {
    order.push(t.job);
    q.charge(t.path, ms(t.job));
  }
  return order;
}

describe('FairQueue', () => {
  it("serves each level fairly: one human's many sessions do not outweigh another human", () => {
    const q = new FairQueue<string>(3);
    // Human a of acme has eight sessions with two slow statements each; human b one short one.
    for (let s = 0; s < 8; s++) for (const n of [1, 2]) q.push(['acme', 'a', `s${s}`], `a${s}.${n}`);
    q.push(['acme', 'b', 'sb'], 'b');
    const order = serveAll(q, (j) => (j === 'b' ? 1 : 3000));
    // b waits for one statement of a, not for one of each of a's sessions.
    expect(order.indexOf('b')).toBe(1);
    // a's sessions take turns among themselves: each one's first statement before any second.
    expect(order.slice(2, 9).every((j) => j.endsWith('.1'))).toBe(true);
  });

  it('serves tenants before humans: a tenant with many humans gets one share', () => {
    const q = new FairQueue<string>(3);
    for (let h = 0; h < 5; h++) q.push(['acme', `h${h}`, 's'], `acme${h}`);
    q.push(['globex', 'g', 's'], 'globex');
    expect(serveAll(q, () => 10).indexOf('globex')).toBe(1);
  });

  it('puts a job back first in its queue, drops what is no longer wanted, and forgets idle keys', () => {
    const q = new FairQueue<string>(2);
    q.push(['t', 's'], 'one');
    q.push(['t', 's'], 'two');
    const first = q.take()!;
    q.push(first.path, first.job, true);
    q.charge(first.path, 5);
    expect(q.take()?.job).toBe('one');
    expect(q.drop((j) => j !== 'two')).toEqual(['two']);
    expect(q.size).toBe(0);
    expect(q.take()).toBeUndefined();
    expect(() => q.push(['t'], 'short path')).toThrow();
  });
});
