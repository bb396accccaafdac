import { describe, expect, it } from 'vitest';
import { BoundedCache } from './decision-cache.js';

describe('BoundedCache', () => {
  it('forgets the oldest entries beyond its entry count', () => {
    const c = new BoundedCache<string>(2, 1_000_000, (v) => v.length);
    c.set('a', '1');
    c.set('b', '2');
    c.set('c', '3');
    expect([c.get('a'), c.get('b'), c.get('c'), c.size]).toEqual([undefined, '2', '3', 2]);
  });

  it('forgets the oldest entries beyond its bytes, however few entries that leaves', () => {
    // The attack: few statements whose rewrites are huge (a guard per row of a multi-row INSERT).
    const c = new BoundedCache<string>(10_000, 1600, (v) => v.length);
    for (let i = 0; i < 20; i++) c.set(`k${i}`, 'x'.repeat(95));
    expect(c.bytes).toBeLessThanOrEqual(1600);
    expect(c.size).toBe(16);
    expect(c.get('k19')).toBeDefined();
    expect(c.get('k3')).toBeUndefined();
    // One entry above a sixteenth of the budget is not kept at all, and evicts nothing.
    c.set('huge', 'x'.repeat(200));
    expect([c.get('huge'), c.size]).toEqual([undefined, 16]);
    // The benign look-alike: small entries, well within the budget, all stay.
    const small = new BoundedCache<string>(10_000, 1_000_000, (v) => v.length);
    for (let i = 0; i < 1000; i++) small.set(`k${i}`, 'v');
    expect(small.size).toBe(1000);
  });

  it('counts a replaced entry once', () => {
    const c = new BoundedCache<string>(10, 1000, (v) => v.length);
    c.set('a', 'x'.repeat(40));
    c.set('a', 'x'.repeat(10));
    expect([c.size, c.bytes]).toEqual([1, 11]);
  });
});
