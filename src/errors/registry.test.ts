import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errors } from './registry.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

describe('error registry', () => {
  it('documents every code with its SQLSTATE and severity in docs/errors.md', () => {
    // Table cells, whatever padding a Markdown formatter gives them.
    const rows = doc
      .split('\n')
      .filter((l) => l.startsWith('|'))
      .map((l) => l.split('|').map((c) => c.trim()));
    for (const [code, spec] of Object.entries(errors)) {
      const row = rows.find((cells) => cells[1] === `\`${code}\``);
      expect(row, `${code} is missing from docs/errors.md`).toBeDefined();
      expect(row?.slice(2, 4)).toEqual([spec.sqlstate, spec.severity]);
    }
  });

  it('uses valid five-character SQLSTATEs', () => {
    for (const spec of Object.values(errors)) expect(spec.sqlstate).toMatch(/^[0-9A-Z]{5}$/);
  });
});
