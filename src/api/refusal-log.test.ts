import { describe, expect, it } from 'vitest';
import { RefusalLog } from './refusal-log.js';

describe('RefusalLog', () => {
  it('gives the first refusal from an address in a window a line and sums up the rest after', () => {
    const r = new RefusalLog(1000);
    expect(r.note('10.0.0.1', 0)).toEqual({ log: true });
    // The flood: thousands more in the same window get no line of their own.
    for (let i = 0; i < 5000; i++) expect(r.note('10.0.0.1', 10).log).toBe(false);
    // The benign look-alike: another client's first mistake is still logged.
    expect(r.note('10.0.0.2', 20)).toEqual({ log: true });
    expect(r.note('10.0.0.2', 1500)).toEqual({
      log: true,
      summary: {
        refused: 5002,
        addresses: 2,
        top: [
          ['10.0.0.1', 5001],
          ['10.0.0.2', 1],
        ],
      },
    });
    // A window in which every refusal had its line needs no summary.
    expect(r.note('10.0.0.3', 2500)).toEqual({ log: true });
  });

  it('remembers a bounded number of addresses per window', () => {
    const r = new RefusalLog(1000, 3);
    for (let i = 0; i < 100; i++) r.note(`10.0.0.${i}`, 0);
    const { summary } = r.note('x', 1000);
    expect(summary).toMatchObject({ refused: 100, addresses: 4 });
  });
});
