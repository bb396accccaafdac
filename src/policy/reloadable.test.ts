import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadParser } from '../sql/parse.js';
import { readCatalogSnapshot } from './catalog-snapshot.js';
import { createReloadableJudge } from './reloadable.js';
import type { JudgeContext } from './verdict.js';
import { freshSessionState } from './verdict.js';

const ctx: JudgeContext = {
  identity: { human: 'h', agent: 'a', tenant: 'acme', roles: [], tokenId: undefined, expiresAt: undefined },
  protocol: 'simple',
  session: freshSessionState(),
};
const products = 'version: 1\ntables:\n  public.products: { scope: global, access: [select] }\n';
const orders = 'version: 1\ntables:\n  public.orders: { tenant_column: org_id, access: [select] }\n';

beforeAll(() => loadParser());

describe('reloadable judge', () => {
  it('swaps valid rules in, refuses invalid ones and keeps the previous in force', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgw-reload-'));
    const file = join(dir, 'rules.yaml');
    writeFileSync(file, products);
    const logs: string[] = [];
    const r = await createReloadableJudge({
      rulesPaths: [dir],
      loadCatalog: async () => readCatalogSnapshot('grammar-tests/catalog.json'),
      searchPath: 'public',
      logger: {
        info: (_o, m) => logs.push(`info ${m}`),
        warn: (_o, m) => logs.push(`warn ${m}`),
        error: (_o, m) => logs.push(`error ${m}`),
      },
    });
    expect(r.judge.judge('SELECT * FROM orders', ctx).verdict.kind).toBe('deny');

    writeFileSync(file, orders);
    expect(await r.reload()).toEqual({ ok: true });
    expect(r.judge.judge('SELECT * FROM orders', ctx).verdict.kind).toBe('rewrite');

    writeFileSync(
      file,
      'version: 1\ntables:\n  public.orders: { tenant_column: tenant, access: [select] }\n',
    );
    const bad = await r.reload();
    expect(bad.ok).toBe(false);
    expect(bad.error).toContain(
      'tables.public.orders.tenant_column: column "tenant" does not exist in public.orders',
    );
    expect(r.judge.judge('SELECT * FROM orders', ctx).verdict.kind).toBe('rewrite');

    writeFileSync(file, 'version: 1\ntables: [oops\n');
    expect((await r.reload()).error).toContain('rules.yaml');
    expect(r.judge.judge('SELECT * FROM orders', ctx).verdict.kind).toBe('rewrite');
    expect(logs).toEqual([
      'info rules loaded',
      'warn new rules refused; the previous rules stay in force',
      'warn new rules refused; the previous rules stay in force',
    ]);
  });

  it('judges on its thread with the rules in force, reloads included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgw-reload-'));
    const file = join(dir, 'rules.yaml');
    writeFileSync(file, 'version: 1\ntables: {}\n');
    const r = await createReloadableJudge({
      rulesPaths: [dir],
      loadCatalog: async () => readCatalogSnapshot('grammar-tests/catalog.json'),
      searchPath: 'public',
      offThread: true,
    });
    try {
      const offThread = r.judge.judgeOffThread!;
      expect((await offThread('SELECT * FROM orders', ctx)).verdict.kind).toBe('deny');
      writeFileSync(file, orders);
      expect(await r.reload()).toEqual({ ok: true });
      const there = await offThread('SELECT * FROM orders', ctx);
      expect(there.verdict.kind).toBe('rewrite');
      // The same verdict as the proxy's own thread gives.
      expect(there.verdict).toEqual(r.judge.judge('SELECT * FROM orders', ctx).verdict);
    } finally {
      await r.close();
    }
  });

  it('moves rulesVersion only when the rules or catalog change (found by the review)', async () => {
    // A reload of the same rules (SIGHUP, an editor's swap file in the rules directory) must not
    // refuse every session's PREPAREd statements and cursors as prepared under other rules.
    const dir = mkdtempSync(join(tmpdir(), 'pgw-reload-'));
    writeFileSync(join(dir, 'rules.yaml'), products);
    const r = await createReloadableJudge({
      rulesPaths: [dir],
      loadCatalog: async () => readCatalogSnapshot('grammar-tests/catalog.json'),
      searchPath: 'public',
    });
    expect(r.judge.rulesVersion).toBe(0);
    writeFileSync(join(dir, '.rules.yaml.swp'), 'not rules');
    expect(await r.reload()).toEqual({ ok: true });
    expect(r.judge.rulesVersion).toBe(0);
    writeFileSync(join(dir, 'rules.yaml'), orders);
    expect(await r.reload()).toEqual({ ok: true });
    expect(r.judge.rulesVersion).toBe(1);
    await r.close();
  });

  it('tells onRulesInForce of the rules at start and after each reload that changes them', async () => {
    // The lock-privilege check ran only at start: rules reloaded later with a new parent-scoped
    // table went unchecked (found by the review).
    const dir = mkdtempSync(join(tmpdir(), 'pgw-reload-'));
    writeFileSync(join(dir, 'rules.yaml'), products);
    const seen: string[][] = [];
    const r = await createReloadableJudge({
      rulesPaths: [dir],
      loadCatalog: async () => readCatalogSnapshot('grammar-tests/catalog.json'),
      searchPath: 'public',
      onRulesInForce: (rules) => seen.push(Object.keys(rules.tables)),
    });
    expect(seen).toEqual([['public.products']]);
    expect(await r.reload()).toEqual({ ok: true });
    writeFileSync(join(dir, 'rules.yaml'), 'version: 1\ntables: [oops\n');
    expect((await r.reload()).ok).toBe(false);
    // Neither a reload of the same rules nor refused ones put other rules in force.
    expect(seen).toHaveLength(1);
    writeFileSync(join(dir, 'rules.yaml'), orders);
    expect(await r.reload()).toEqual({ ok: true });
    expect(seen).toEqual([['public.products'], ['public.orders']]);
    await r.close();
  });

  it('an older reload overtaken by a newer one says it was superseded, not refused (red team, round 45)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgw-reload-'));
    writeFileSync(join(dir, 'rules.yaml'), products);
    let slow: (() => void) | undefined;
    let calls = 0;
    const r = await createReloadableJudge({
      rulesPaths: [dir],
      // The first reload's catalog comes only after the second reload has finished.
      loadCatalog: async () => {
        if (++calls === 2) await new Promise<void>((resolve) => (slow = resolve));
        return readCatalogSnapshot('grammar-tests/catalog.json');
      },
      searchPath: 'public',
    });
    writeFileSync(join(dir, 'rules.yaml'), orders);
    const older = r.reload();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await r.reload()).toEqual({ ok: true });
    slow?.();
    expect(await older).toEqual({ ok: false, superseded: true, error: 'superseded by a newer reload' });
    expect(r.judge.judge('SELECT * FROM orders', ctx).verdict.kind).toBe('rewrite');
  });

  it('refuses to start without valid rules', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgw-reload-'));
    writeFileSync(join(dir, 'r.yaml'), 'version: 2\n');
    await expect(
      createReloadableJudge({
        rulesPaths: [dir],
        loadCatalog: async () => readCatalogSnapshot('grammar-tests/catalog.json'),
        searchPath: 'public',
      }),
    ).rejects.toThrow(/r\.yaml: version/);
  });

  it('refuses rules whose tenant.claim differs from auth.claims.tenant, at start and on reload', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgw-reload-'));
    const file = join(dir, 'rules.yaml');
    writeFileSync(file, orders); // tenant.claim defaults to "tenant"
    const opts = {
      rulesPaths: [dir],
      loadCatalog: async () => readCatalogSnapshot('grammar-tests/catalog.json'),
      searchPath: 'public',
    };
    await expect(createReloadableJudge({ ...opts, tenantClaim: 'org' })).rejects.toThrow(
      /tenant\.claim is "tenant" but the config's auth\.claims\.tenant is "org"/,
    );
    writeFileSync(file, `version: 1\ntenant: { claim: org }\n${orders.slice('version: 1\n'.length)}`);
    const r = await createReloadableJudge({ ...opts, tenantClaim: 'org' });
    expect(r.judge.judge('SELECT * FROM orders', ctx).verdict.kind).toBe('rewrite');
    writeFileSync(file, orders);
    const refused = await r.reload();
    expect(refused.ok).toBe(false);
    expect(refused.error).toMatch(/auth\.claims\.tenant is "org"/);
    expect(r.judge.judge('SELECT * FROM orders', ctx).verdict.kind).toBe('rewrite');
  });

  it('watch() reloads when a file changes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgw-reload-'));
    const file = join(dir, 'rules.yaml');
    writeFileSync(file, products);
    const r = await createReloadableJudge({
      rulesPaths: [dir],
      loadCatalog: async () => readCatalogSnapshot('grammar-tests/catalog.json'),
      searchPath: 'public',
    });
    const stop = r.watch();
    try {
      writeFileSync(file, orders);
      await expect
        .poll(() => r.judge.judge('SELECT * FROM orders', ctx).verdict.kind, { timeout: 5000 })
        .toBe('rewrite');
    } finally {
      stop();
    }
  });
});
