import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { readCatalogSnapshot } from '../src/policy/catalog-snapshot.js';
import { createPolicyJudge } from '../src/policy/engine.js';
import { loadRules } from '../src/policy/rules-load.js';
import type { Judge } from '../src/policy/verdict.js';
import type { Catalog, CatalogRelation } from '../src/policy/catalog.js';
import type { Rules } from '../src/policy/rules-schema.js';
import { judgeContext } from './support/judge-context.js';
import { loadParser, parseSql } from '../src/sql/parse.js';

/**
 * Every statement of PostgreSQL's own regression suite gets a verdict: no exception escapes, no
 * statement takes long, every rewrite parses again. The counts are printed for the README.
 */
/** Vendored from the shared corpus (PostgreSQL licence: test/corpus/README.md). */
const corpusFile =
  process.env.PGWARDEN_CORPUS ?? new URL('../test/corpus/pg-regress.jsonl', import.meta.url).pathname;
let demoJudge: Judge;
const ctx = judgeContext('acme', { human: 'h@acme.test', agent: 'corpus' });

function readCorpus(): string[] {
  return readFileSync(corpusFile, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => (JSON.parse(l) as { sql: string }).sql);
}

beforeAll(async () => {
  await loadParser();
  demoJudge = createPolicyJudge(
    await loadRules(['rules']),
    readCatalogSnapshot('grammar-tests/catalog.json'),
    {
      searchPath: 'public',
    },
  );
});

/** Every relation name the corpus uses (unqualified, so it resolves in public). */
function corpusRelations(stmts: readonly string[]): Set<string> {
  const out = new Set<string>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (v === null || typeof v !== 'object') return;
    const rv = (v as { RangeVar?: { relname?: string; schemaname?: string } }).RangeVar;
    if (rv?.relname && rv.schemaname === undefined) out.add(rv.relname);
    Object.values(v).forEach(walk);
  };
  for (const sql of stmts) {
    try {
      walk(parseSql(sql).stmts);
    } catch {
      // counted by the judge as a syntax error
    }
  }
  return out;
}

/** A catalog and rules in which every table of the corpus is tenant-scoped, so rewriting is exercised everywhere. */
async function everythingScoped(stmts: readonly string[]): Promise<Judge> {
  const base = readCatalogSnapshot('grammar-tests/catalog.json');
  const tenantCol = {
    name: 'tenant_id',
    type: 'text',
    sqlType: 'text',
    position: 1,
    notNull: true,
    hasDefault: false,
  };
  const relations: Record<string, CatalogRelation> = {};
  const tables: Rules['tables'] = {};
  for (const name of corpusRelations(stmts)) {
    if (base.relations.pg_catalog?.[name]) continue;
    relations[name] = { schema: 'public', name, kind: 'r', columns: [tenantCol] };
    tables[`public.${name}`] = {
      scope: 'tenant',
      tenant_column: 'tenant_id',
      access: ['select', 'insert', 'update', 'delete'],
    };
  }
  const catalog: Catalog = { ...base, relations: { ...base.relations, public: relations } };
  return createPolicyJudge({ version: 1, tenant: { claim: 'tenant' }, tables }, catalog, {
    searchPath: 'public',
  });
}

describe('pg-regress corpus', () => {
  it('with every corpus table tenant-scoped: verdicts, no crash, every rewrite re-parses', async () => {
    const stmts = readCorpus();
    runAll(await everythingScoped(stmts), stmts, 'every table scoped');
  });

  it('with the demo rules: every statement gets a verdict, quickly, and every rewrite re-parses', () => {
    const stmts = readCorpus();
    runAll(demoJudge, stmts, 'demo rules');
  });
});

function runAll(judge: Judge, stmts: readonly string[], label: string): void {
  {
    expect(stmts.length).toBe(40_701);
    const counts: Record<string, number> = { allow: 0, rewrite: 0, deny: 0 };
    const byCode: Record<string, number> = {};
    const reasons: Record<string, number> = {};
    const internal: string[] = [];
    let slowest = 0;
    for (const sql of stmts) {
      const t0 = performance.now();
      const { verdict } = judge.judge(sql, ctx);
      slowest = Math.max(slowest, performance.now() - t0);
      counts[verdict.kind] = (counts[verdict.kind] ?? 0) + 1;
      if (verdict.kind === 'deny') {
        byCode[verdict.code] = (byCode[verdict.code] ?? 0) + 1;
        const r = verdict.reasons[verdict.reasons.length - 1]?.split(':')[0] ?? '';
        reasons[r] = (reasons[r] ?? 0) + 1;
        if (verdict.code === 'PGW_INTERNAL') internal.push(`${verdict.reasons.join(', ')} :: ${sql}`);
      }
      if (verdict.kind === 'rewrite') expect(() => parseSql(verdict.sql), verdict.sql).not.toThrow();
    }
    const top = Object.entries(reasons)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 15);
    console.log(
      `[${label}] corpus verdicts: ${JSON.stringify(counts)}; deny by code: ${JSON.stringify(byCode)}; slowest ${slowest.toFixed(1)} ms\n` +
        `top deny reasons: ${top.map(([r, n]) => `${r} ${n}`).join(', ')}\n` +
        internal.slice(0, 20).join('\n'),
    );
    expect(internal).toEqual([]);
    expect(slowest).toBeLessThan(2000);
  }
}
