import { describe, expect, it } from 'vitest';
import { BoundedCache, storedKey } from './decision-cache.js';

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

describe('long keys', () => {
  it('are stored by digest, so texts of one length do not share one hash chain, and stay distinct', () => {
    // V8 hashes a string over 16,383 characters by its length alone: every cached text of one
    // length shared a bucket chain, and a lookup compared with all of them (red team, round 12).
    const text = (i: number): string => `SELECT 1${' '.repeat(17_480)} AS a${String(i).padStart(6, '0')}`;
    expect([text(1).length, text(2).length]).toEqual([17_499, 17_499]);
    expect(storedKey(text(1)).startsWith('\u000017499:')).toBe(true);
    expect(storedKey(text(1))).toMatch(/:[A-Za-z0-9+/]{43}=$/);
    expect(storedKey(text(1))).not.toBe(storedKey(text(2)));
    const c = new BoundedCache<number>(10_000, 1_000_000_000, () => 8);
    for (let i = 0; i < 200; i++) c.set(text(i), i);
    for (let i = 0; i < 200; i++) expect(c.get(text(i))).toBe(i);
    expect(c.get(text(200))).toBeUndefined();
    // The look-alike: a short key is stored as it is.
    expect(storedKey('SELECT 1')).toBe('SELECT 1');
  });
});
