import { describe, expect, it } from 'vitest';
import { LogThrottle } from './log-throttle.js';

describe('LogThrottle', () => {
  it('gives the first refusal from an address in a window a line and sums up the rest after', () => {
    const r = new LogThrottle(1000);
    expect(r.note('10.0.0.1', 0)).toEqual({ log: true });
    // The flood: thousands more in the same window get no line of their own.
    for (let i = 0; i < 5000; i++) expect(r.note('10.0.0.1', 10).log).toBe(false);
    // The benign look-alike: another client's first mistake is still logged.
    expect(r.note('10.0.0.2', 20)).toEqual({ log: true });
    expect(r.note('10.0.0.2', 1500)).toEqual({
      log: true,
      summary: {
        events: 5002,
        keys: 2,
        top: [
          ['10.0.0.1', 5001],
          ['10.0.0.2', 1],
        ],
      },
    });
    // A window in which every refusal had its line needs no summary.
    expect(r.note('10.0.0.3', 2500)).toEqual({ log: true });
  });

  it('remembers a bounded number of keys per window', () => {
    const r = new LogThrottle(1000, 3);
    for (let i = 0; i < 100; i++) r.note(`10.0.0.${i}`, 0);
    const { summary } = r.note('x', 1000);
    expect(summary).toMatchObject({ events: 100, keys: 4 });
  });
});
