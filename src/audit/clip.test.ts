import { describe, expect, it } from 'vitest';
import { headOf } from './clip.js';

describe('headOf', () => {
  it('never keeps half of a surrogate pair', () => {
    const s = 'a😀b';
    expect(headOf(s, 2)).toBe('a');
    expect(headOf(s, 3)).toBe('a😀');
    expect(headOf(s, 10)).toBe(s);
    expect(JSON.stringify(headOf('😀'.repeat(3000), 4097))).not.toMatch(/\\ud83d"$/);
  });
});
