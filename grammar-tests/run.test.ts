import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readCatalogSnapshot } from '../src/policy/catalog-snapshot.js';
import { readCases, runCase, type RuleCase } from '../src/policy/case-file.js';
import { createPolicyJudge } from '../src/policy/engine.js';
import { loadRules } from '../src/policy/rules-load.js';
import type { Judge } from '../src/policy/verdict.js';
import { loadParser } from '../src/sql/parse.js';

/**
 * One case per file, grouped by class (one folder each): attacks and their benign look-alikes,
 * judged with the demo rules (rules/) against the demo catalog (grammar-tests/catalog.json).
 */
const root = 'grammar-tests';
const classes = readdirSync(root, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();
let judge: Judge;

beforeAll(async () => {
  await loadParser();
  judge = createPolicyJudge(await loadRules(['rules']), readCatalogSnapshot(join(root, 'catalog.json')), {
    searchPath: 'public',
  });
});

for (const cls of classes) {
  const files = readdirSync(join(root, cls))
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  describe(cls, () => {
    for (const f of files)
      it(f.replace(/\.yaml$/, ''), async () => {
        const cases: RuleCase[] = await readCases(join(root, cls, f));
        for (const c of cases) expect(runCase(judge, c).problems, c.sql).toEqual([]);
      });
  });
}

it('has attack and benign cases in every class', () => {
  for (const cls of classes) {
    const files = readdirSync(join(root, cls));
    expect(
      files.some((f) => f.startsWith('attack-')),
      cls,
    ).toBe(true);
    expect(
      files.some((f) => f.startsWith('benign-')),
      cls,
    ).toBe(true);
  }
});
