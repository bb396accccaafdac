import { describe, expect, it } from 'vitest';
import { csvCell } from './csv.js';

describe('CSV cells', () => {
  it('quote separators, quotes and newlines (RFC 4180)', () => {
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('line1\nline2')).toBe('"line1\nline2"');
    expect(csvCell(null)).toBe('');
    expect(csvCell(['a', 'b'])).toBe('"a;b"');
  });

  it('defuse cells a spreadsheet would run as formulas', () => {
    expect(csvCell('=HYPERLINK("http://x")')).toBe(`"'=HYPERLINK(""http://x"")"`);
    expect(csvCell('-- comment')).toBe("'-- comment");
    expect(csvCell('SELECT 1')).toBe('SELECT 1');
    expect(csvCell('+1')).toBe("'+1");
    expect(csvCell('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvCell('\t=1')).toBe(`"'\t=1"`);
    expect(csvCell('\r=1')).toBe(`"'\r=1"`);
    // Found by the red team: an import that trims cells would run these.
    expect(csvCell('  =1+1')).toBe("'  =1+1");
    for (const ws of ['\v', '\f', '\u00a0', '\u2003', '\u3000', '\ufeff'])
      expect(csvCell(`${ws}=1`)).toBe(`'${ws}=1`);
    expect(csvCell(' SELECT 1')).toBe(' SELECT 1');
  });

  it('quote cells holding ; or a tab so a ;- or tab-separated import does not split them into a formula', () => {
    expect(csvCell('SELECT 1;=1+1')).toBe('"SELECT 1;=1+1"');
    expect(csvCell("SELECT 1\t=cmd|' /C calc'!A0")).toBe(`"SELECT 1\t=cmd|' /C calc'!A0"`);
    expect(csvCell('x;@cmd')).toBe('"x;@cmd"');
    expect(csvCell(['tables.public.a', '=HYPERLINK("x")'])).toBe('"tables.public.a;=HYPERLINK(""x"")"');
    // The apostrophe defence still applies before quoting.
    expect(csvCell('=1;2')).toBe(`"'=1;2"`);
  });
});
