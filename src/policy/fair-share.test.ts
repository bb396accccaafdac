import { describe, expect, it } from 'vitest';
import { FairShare } from './fair-share.js';

describe('FairShare', () => {
  it('serves the key that has used least; a newcomer waits for no more than one turn of each', () => {
    const f = new FairShare<string>();
    expect(f.pick(['a'])).toBe('a');
    f.charge('a', 3000, () => true); // a's slow statement
    // b arrives while a has a backlog: b goes first, though a's statements came earlier.
    expect(f.pick(['a', 'b'])).toBe('b');
    f.charge('b', 1, () => false);
    expect(f.pick(['a'])).toBe('a');
  });

  it('does not starve a key with a backlog while another keeps coming back', () => {
    const f = new FairShare<string>();
    f.pick(['a']);
    f.charge('a', 100, () => true);
    let turnsOfB = 0;
    while (f.pick(['a', 'b']) === 'b') {
      f.charge('b', 1, () => true);
      turnsOfB++;
    }
    expect(turnsOfB).toBe(100);
  });

  it('forgets keys that come and go', () => {
    const f = new FairShare<number>();
    for (let i = 0; i < 10_000; i++) {
      f.pick([i]);
      f.charge(i, 1, () => false);
    }
    expect(f.size).toBeLessThan(3);
  });
});
