import { describe, expect, it } from 'vitest';
import { copyText, copyValue } from './copy-in.js';

describe("COPY's text format", () => {
  it('writes NULL as \\N and escapes the characters COPY reads specially', () => {
    expect(copyValue(null)).toBe('\\N');
    expect(copyValue(undefined)).toBe('\\N');
    expect(copyValue('\\N')).toBe('\\\\N');
    expect(copyValue('a\tb\nc\rd\\e')).toBe('a\\tb\\nc\\rd\\\\e');
    expect(copyValue(42)).toBe('42');
    expect(copyValue('plain text, é中')).toBe('plain text, é中');
  });

  it('quotes every array element, so commas, braces and quotes stay inside it', () => {
    expect(copyValue(['a', 'b,c', '{d}', 'e"f', 'g\\h'])).toBe('{"a","b,c","{d}","e\\\\"f","g\\\\\\\\h"}');
    expect(copyValue([])).toBe('{}');
  });

  it('puts one row per line with the columns in the given order', () => {
    expect(
      copyText(
        [
          { b: 2, a: 'x' },
          { a: null, b: 'y\tz' },
        ],
        ['a', 'b'],
      ),
    ).toBe('x\t2\n\\N\ty\\tz\n');
  });
});
