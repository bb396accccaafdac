import { beforeAll, describe, expect, it, vi } from 'vitest';
import { loadParser } from '../sql/parse.js';
import { readCatalogSnapshot } from './catalog-snapshot.js';
import { createPolicyJudge } from './engine.js';
import { loadRules } from './rules-load.js';
import type { Judge } from './verdict.js';
import { freshSessionState } from './verdict.js';

/**
 * The SQL printer's limits, simulated: the printer (pgsql-deparser, src/sql/deparse.ts) now prints
 * every construct the analysis accepts, so a refusal for one can no longer be shown with real SQL.
 */
const printer = vi.hoisted(() => ({ mode: 'real' as 'real' | 'throws' | 'garbles' }));
vi.mock('../sql/deparse.js', async (original) => {
  const real = await original<typeof import('../sql/deparse.js')>();
  return {
    deparseStatements: (stmts: Parameters<typeof real.deparseStatements>[0]): string => {
      if (printer.mode === 'throws') throw new Error('Deparser does not handle node type: JsonTablePath');
      const sql = real.deparseStatements(stmts);
      return printer.mode === 'garbles' ? sql.replace('SELECT', 'SELEC') : sql;
    },
  };
});

let judge: Judge;
beforeAll(async () => {
  await loadParser();
  judge = createPolicyJudge(await loadRules(['rules']), readCatalogSnapshot('grammar-tests/catalog.json'), {
    searchPath: 'public',
  });
});

const ctx = {
  identity: { human: 'h', agent: 'a', tenant: 'acme', roles: [], tokenId: undefined, expiresAt: undefined },
  protocol: 'simple' as const,
  session: freshSessionState(),
};

describe("limits of pgwarden's SQL printer", () => {
  it('refuse the statement with a message an agent can act on, not a bare internal error', () => {
    for (const [mode, sql, reason, says] of [
      [
        'throws',
        'SELECT id FROM orders WHERE total > 1',
        'rewrite_unprintable',
        'does not handle JsonTablePath',
      ],
      ['garbles', 'SELECT id FROM orders WHERE total > 2', 'rewrite_unparsable', 'its rewrite did not parse'],
    ] as const) {
      printer.mode = mode;
      const v = judge.judge(sql, ctx).verdict;
      expect(v, sql).toMatchObject({ kind: 'deny', code: 'PGW_INTERNAL' });
      if (v.kind !== 'deny') continue;
      expect(
        v.reasons.some((r) => r.startsWith(`${reason}: `)),
        v.reasons.join(),
      ).toBe(true);
      expect(v.message).toContain(says);
      expect(v.message).toContain('write that part of it another way');
    }
    // The look-alike: with the printer whole, the statement is rewritten.
    printer.mode = 'real';
    expect(judge.judge('SELECT id FROM orders WHERE total > 3', ctx).verdict.kind).toBe('rewrite');
  });
});
