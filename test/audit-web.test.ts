import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi } from '../src/api/server.js';
import { startDecisionLog } from '../src/audit/decision-log.js';
import type { DecisionRecord } from '../src/audit/record.js';
import { sampleOutcome, sampleRecord } from '../src/audit/sample-records.js';
import type { AuditReader } from '../src/audit/store-reader.js';
import { startTestAuditStore, type TestAuditStore } from './support/audit-store.js';
import type { TestDatabase } from './support/db.js';

const logger = pino({ level: 'silent' });
const TOKEN = 'web-responder-token-'.padEnd(40, 'z');
let store: TestAuditStore;
let db: TestDatabase;
let profile: string;
let reader: AuditReader;
let api: { url: string; close(): Promise<void> };
let browser: BrowserContext;
let page: Page;
const records: DecisionRecord[] = [];
/** Displayed raw, it reads as an UPDATE of the row with id 3, followed by a comment (red team, round 33). */
const LONG_RUN_SQL = 'SELECT ' + '\u0001'.repeat(19_993);
const ALTERNATING_SQL = 'SELECT ' + '\u0001\u0002'.repeat(9_996) + '\u0001';
const BIDI_SQL = "UPDATE orders SET status = 'bidi' /*\u202e \u2066WHERE id = 3\u2069 \u2066 only one */";

beforeAll(async () => {
  store = await startTestAuditStore('audit_web');
  ({ db, reader } = store);
  profile = mkdtempSync(join(tmpdir(), 'pgw-chromium-'));
  const cfg = store.config({
    api: { port: 0, tokens: [{ name: 'web', token: TOKEN, roles: ['responder'] }] },
  });
  const log = await startDecisionLog(cfg, { instanceId: 'web-1', upstreamUrl: db.url, logger });
  const people = [
    ['sess-web-alice', 'alice@acme.test', 'acme'],
    ['sess-web-bob', 'bob@acme.test', 'acme'],
    ['sess-web-eve', 'eve@globex.test', 'globex'],
  ] as const;
  for (let seq = 0; seq < 6; seq++) {
    for (const [sessionId, human, tenant] of people) {
      const verdict = (['allow', 'rewrite', 'deny'] as const)[seq % 3];
      const r = sampleRecord({
        instanceId: 'web-1',
        sessionId,
        seq,
        human,
        tenant,
        verdict,
        sql:
          human === 'eve@globex.test' && seq === 2
            ? `SELECT '<img src=x onerror="document.title=1">' FROM orders`
            : human === 'eve@globex.test' && seq === 4
              ? BIDI_SQL
              : `SELECT id, total FROM orders WHERE id = ${seq}`,
        ruleIds: verdict === 'deny' ? ['default.deny-unlisted'] : ['tables.public.orders'],
      });
      records.push(r);
      log.decide(r);
      if (verdict !== 'deny') log.complete(sampleOutcome(r, { rows: seq }));
    }
  }
  // Agent-written SQL of nothing but control characters: one of a run, and two alternating.
  for (const [seq, sql] of [LONG_RUN_SQL, ALTERNATING_SQL].entries()) {
    const r = sampleRecord({
      instanceId: 'web-1',
      sessionId: 'sess-web-mallory',
      seq,
      sql,
      human: 'mallory@acme.test',
    });
    records.push(r);
    log.decide(r);
  }
  expect(await log.flushToStore()).toBe(true);
  await log.close();
  api = await startApi(cfg, { reader, logger });
  // A fresh profile per run (Playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = await browser.newPage();
});

afterAll(async () => {
  await browser?.close();
  await api?.close();
  await store?.close();
  rmSync(profile, { recursive: true, force: true });
});

describe('responder web page in Chromium', () => {
  it('loads and lists decisions once a responder token is given', async () => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(api.url + '/');
    await expect.poll(() => page.title()).toBe('pgwarden decisions');
    await page.fill('#token', TOKEN);
    await page.click('#connect');
    await page.waitForSelector('#results tbody tr');
    expect(await page.locator('#results tbody tr').count()).toBe(records.length);
    expect(await page.textContent('#status')).toBe('connected');
    // Agent-written SQL is shown as text: no element was created from it.
    expect(await page.locator('#results img').count()).toBe(0);
    expect(await page.title()).toBe('pgwarden decisions');
    expect(errors).toEqual([]);
  });

  it('filters by human', async () => {
    await page.fill('#f-human', 'bob@acme.test');
    await page.click('#search');
    await expect.poll(() => page.locator('#results tbody tr').count()).toBe(6);
    const humans = await page.locator('#results tbody td.human').allTextContents();
    expect(new Set(humans)).toEqual(new Set(['bob@acme.test']));
  });

  it('opens a session as an ordered timeline, then a decision with original and rewritten SQL side by side', async () => {
    await page.locator('#results tbody tr a.session-link').first().click();
    await page.waitForSelector('#session-view:not([hidden])');
    expect(await page.textContent('#session-id')).toBe('sess-web-bob');
    const items = page.locator('#timeline li');
    expect(await items.count()).toBe(6);
    const seqs = await page.locator('#timeline li strong').allTextContents();
    expect(seqs.map((s) => s.trim())).toEqual(['#0', '#1', '#2', '#3', '#4', '#5']);

    await page.locator('#timeline li.rewrite').first().click();
    await page.waitForSelector('#decision-view:not([hidden])');
    const original = await page.textContent('#sql-original');
    const rewritten = await page.textContent('#sql-rewritten');
    expect(original).toBe('SELECT id, total FROM orders WHERE id = 1');
    expect(rewritten).toContain(`orders.org_id OPERATOR(pg_catalog.=) 'acme'`);
    expect(await page.textContent('[data-fact="Deciding rules"]')).toBe('tables.public.orders');
    const boxes = await page
      .locator('.sql-pair figure')
      .evaluateAll((els) => els.map((e) => e.getBoundingClientRect().top));
    expect(boxes).toHaveLength(2);
    expect(Math.abs((boxes[0] as number) - (boxes[1] as number))).toBeLessThan(2);
    if (process.env.PGW_SCREENSHOT)
      await page.screenshot({ path: process.env.PGW_SCREENSHOT, fullPage: true });
  });

  it('shows an agent statement of thousands of control characters in a bounded number of elements (red team, round 43)', async () => {
    // One highlighted escape per character froze the page for every responder.
    await page.evaluate(() => (location.hash = '#/'));
    await page.waitForSelector('#search-view:not([hidden])');
    await page.fill('#f-human', 'mallory@acme.test');
    await page.click('#search');
    await expect.poll(() => page.locator('#results tbody tr').count()).toBe(2);
    const cells = page.locator('#results tbody td.sql');
    for (const text of await cells.allTextContents()) expect(text).toMatch(/\u2026 \(20000 characters\)$/);
    expect(await page.locator('#results tbody .hidden-char').count()).toBeLessThanOrEqual(400);
    for (const sql of [LONG_RUN_SQL, ALTERNATING_SQL]) {
      const r = records.find((x) => x.sql === sql)!;
      await page.evaluate((id) => (location.hash = '#/decision/' + id), r.id);
      await page.waitForSelector('#decision-view:not([hidden])');
      await expect.poll(() => page.locator('#sql-original .hidden-char').count()).toBeGreaterThan(0);
      expect(await page.locator('#sql-original .hidden-char').count()).toBeLessThanOrEqual(200);
    }
    // Every character is still there, as an escape: none raw.
    const original = (await page.textContent('#sql-original')) ?? '';
    expect(original.includes('\u0001') || original.includes('\u0002')).toBe(false);
    expect(original).toContain('\\x01\\x02');
  });

  it('shows the direction controls of agent-written SQL as visible escapes, in the list and the decision', async () => {
    const bidi = records.find((r) => r.sql === BIDI_SQL)!;
    await page.evaluate(() => (location.hash = '#/'));
    await page.waitForSelector('#search-view:not([hidden])');
    await page.fill('#f-human', 'eve@globex.test');
    await page.click('#search');
    await expect
      .poll(() => page.locator('#results tbody td.sql').allTextContents())
      .toContain(
        "UPDATE orders SET status = 'bidi' /*\\u202e \\u2066WHERE id = 3\\u2069 \\u2066 only one */",
      );
    const listed = page.locator(`#results tbody tr[data-id="${bidi.id}"] td.sql`);
    expect(await listed.getAttribute('title')).not.toMatch(/[\u202e\u2066\u2069]/);
    await page.evaluate((id) => (location.hash = '#/decision/' + id), bidi.id);
    await page.waitForSelector('#decision-view:not([hidden])');
    const original = await page.textContent('#sql-original');
    expect(original).not.toMatch(/[\u202e\u2066\u2069]/);
    expect(original).toContain('/*\\u202e \\u2066WHERE id = 3\\u2069');
    expect(await page.locator('#sql-original .hidden-char').count()).toBe(4);
  });
});
