import { describe, expect, it } from 'vitest';
import { safeJson } from './json-text.js';

describe('safeJson', () => {
  it('escapes line separators, C1 controls and bidi controls, and means the same value', () => {
    const value = { sql: "SELECT 'a\u2028b\u2029c\u0085d\u009b2J\u202eevil\u2066\ufeff'", n: 1 };
    const text = safeJson(value);
    expect(text).not.toMatch(/[\u0080-\u009f\u2028\u2029\u202e\u2066\ufeff]/);
    expect(text).toContain('\\u2028');
    expect(text).toContain('\\u0085');
    expect(JSON.parse(text)).toEqual(value);
    // Python's str.splitlines and a line reader see one line.
    // eslint-disable-next-line no-control-regex -- the line ends of Python str.splitlines
    expect(text.split(/\r\n|[\n\r\v\f\x1c-\x1e\u0085\u2028\u2029]/)).toHaveLength(1);
  });

  it('leaves every other character as JSON.stringify writes it (the look-alike)', () => {
    const value = { sql: "SELECT 'café ü 漢字 😀 \u00a0 \u200b' -- \\ \" \n\t" };
    expect(safeJson(value)).toBe(JSON.stringify(value));
  });
});
