import { describe, expect, it } from 'vitest';
import { SpoolHolders } from './spool-holders.js';

describe('SpoolHolders', () => {
  it("charges each holder its entries' bytes and pays them off in the order they were written", () => {
    const h = new SpoolHolders(100); // left by an earlier run: nobody's
    h.add('acme', 50);
    h.add('acme', 25);
    h.add(null, 10);
    h.add('globex', 40);
    h.add('acme', 5);
    expect([h.of('acme'), h.of('globex')]).toEqual([80, 40]);
    h.delivered(120); // the earlier run's 100, then 20 of acme's first
    expect(h.of('acme')).toBe(60);
    h.delivered(55); // the rest of acme's run, then 0 of the unowned 10
    expect(h.of('acme')).toBe(5);
    h.delivered(30); // the unowned 10, then 20 of globex
    expect([h.of('acme'), h.of('globex')]).toEqual([5, 20]);
    h.delivered(1000); // more than is held: everything is paid, nothing goes negative
    expect([h.of('acme'), h.of('globex')]).toEqual([0, 0]);
    h.add('acme', 7);
    expect(h.of('acme')).toBe(7);
  });

  it('stays small over a long run of deliveries', () => {
    const h = new SpoolHolders(0);
    for (let i = 0; i < 100_000; i++) {
      h.add(i % 2 ? 'acme' : 'globex', 10);
      h.delivered(10);
    }
    expect([h.of('acme'), h.of('globex')]).toEqual([0, 0]);
    expect((h as unknown as { runs: unknown[] }).runs.length).toBeLessThan(3000);
  });
});
