import { describe, expect, it } from 'vitest';
import { PendingQueue, pending } from './pending.js';

describe('PendingQueue', () => {
  it('is full at ten thousand requests, or when the Binds it keeps reach 16 MB', () => {
    const q = new PendingQueue();
    for (let i = 0; i < 9_999; i++) q.push(pending('flush'));
    expect(q.full).toBe(false);
    q.push(pending('sync'));
    expect(q.full).toBe(true);
    q.shift();
    expect(q.full).toBe(false);

    const big = new PendingQueue();
    for (let i = 0; i < 15; i++) {
      const p = pending('bind');
      p.secrets = Buffer.alloc(1024 * 1024);
      big.push(p);
    }
    expect(big.full).toBe(false);
    const p = pending('execute');
    p.secrets = Buffer.alloc(1024 * 1024);
    big.push(p);
    expect(big.full).toBe(true);
    big.shift();
    expect(big.full).toBe(false);
    // A Bind too large to keep costs only its place.
    const withheld = pending('bind');
    withheld.secrets = 'withheld';
    big.push(withheld);
    expect(big.full).toBe(false);
  });

  it('tells the request forwarded last', () => {
    const q = new PendingQueue();
    expect(q.last()).toBeUndefined();
    q.push(pending('flush'));
    q.push(pending('sync'));
    expect(q.last()?.kind).toBe('sync');
    q.shift();
    q.shift();
    expect(q.last()).toBeUndefined();
  });
});
