import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditConfigSchema, type AuditConfig, type AuditConfigInput } from '../src/audit/config.js';
import { startDecisionLog, type DecisionLog } from '../src/audit/decision-log.js';
import { sampleOutcome, sampleRecord } from '../src/audit/sample-records.js';
import { FACET_MAX_CHARS, facetsOf } from '../src/audit/facets.js';
import { openNdjson } from '../src/audit/ndjson.js';
import { instanceDirName } from '../src/audit/spool-layout.js';
import { verifyAll, verifyInstance } from '../src/audit/verify.js';
import { AuditReader } from '../src/audit/store-reader.js';
import { startTestAuditStore, type TestAuditStore } from './support/audit-store.js';
import type { TestDatabase } from './support/db.js';

const logger = pino({ level: 'silent' });
let store: TestAuditStore;
let db: TestDatabase;
let spoolRoot: string;
let reader: AuditReader;
const config = (over: AuditConfigInput = {}): AuditConfig => store.config(over);

/** Writes `n` statements (with outcomes) over a few sessions through the sink, as the proxy would. */
function drive(log: DecisionLog, instanceId: string, n: number, sessions = 3): string[] {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const s = i % sessions;
    const r = sampleRecord({
      instanceId,
      sessionId: `${instanceId}-s${s}`,
      seq: Math.floor(i / sessions),
      human: `human${s}@acme.test`,
      verdict: (['allow', 'rewrite', 'deny'] as const)[i % 3],
    });
    log.decide(r);
    if (r.verdict !== 'deny') log.complete(sampleOutcome(r, { rows: i }));
    ids.push(r.id);
  }
  return ids;
}

beforeAll(async () => {
  store = await startTestAuditStore('audit_store');
  ({ db, spoolRoot, reader } = store);
});

afterAll(() => store.close());

describe('decision log to the Postgres store', () => {
  it('delivers every record once with its outcome, and the chain verifies', async () => {
    const log = await startDecisionLog(config(), { instanceId: 'i-basic', upstreamUrl: db.url, logger });
    const ids = drive(log, 'i-basic', 300);
    expect(await log.flushToStore()).toBe(true);
    const rows = await db.sql<{ n: string; done: string }>(
      `SELECT (SELECT count(*) FROM pgwarden_decisions WHERE instance_id = 'i-basic') AS n,
              (SELECT count(outcome_body) FROM pgwarden_decisions WHERE instance_id = 'i-basic')
              + (SELECT count(*) FROM pgwarden_outcomes WHERE instance_id = 'i-basic') AS done`,
    );
    expect(Number(rows[0]?.n)).toBe(300);
    expect(Number(rows[0]?.done)).toBe(200);
    const one = await reader.get(ids[4] as string);
    expect(one?.verdict).toBe('rewrite');
    expect(one?.outcome?.rows).toBe(4);
    expect(log.stats().spool?.unshippedBytes).toBeLessThan(200);
    await log.close();
    const [report] = await verifyAll(reader.pool, undefined, 'i-basic');
    expect(report).toMatchObject({ ok: true, checked: 500, problem: null });
  });

  it('stores any text exactly as sent: tabs, newlines, backslashes, quotes, NUL-free Unicode', async () => {
    const log = await startDecisionLog(config(), { instanceId: 'i-text', upstreamUrl: db.url, logger });
    const sql = "SELECT E'a\\tb\\\\n', '\t', 'line1\nline2\r\n', '\\N', '\"{x,y}\"', 'é中🙂' -- \\. end";
    const r = sampleRecord({
      instanceId: 'i-text',
      sessionId: 's\t1',
      seq: 0,
      sql,
      human: 'o"brien\\x@acme.test',
      tables: ['public."we,ird"', 'public.{braces}'],
      flags: ['a\tb'],
    });
    log.decide(r);
    log.complete(sampleOutcome(r, { command: 'SELECT 1' }));
    expect(await log.flushToStore()).toBe(true);
    await log.close();
    const stored = await db.sql<{ sql: string; human: string; session_id: string; facets: string[] }>(
      'SELECT sql, human, session_id, facets FROM pgwarden_decisions WHERE id = $1',
      [r.id],
    );
    expect(stored[0]).toMatchObject({ sql, human: r.human, session_id: 's\t1' });
    expect(stored[0]?.facets).toEqual(
      expect.arrayContaining(['tb:public."we,ird"', 'tb:public.{braces}', 'f:a\tb', `h:${r.human}`]),
    );
    // verify recomputes the chain and the facets from the stored body: nothing was altered.
    expect(await verifyInstance(reader.pool, 'i-text', undefined)).toMatchObject({ ok: true });
  });

  it('sets aside a record the store refuses (rejected.ndjson) and delivers the rest of its batch', async () => {
    const log = await startDecisionLog(config(), { instanceId: 'i-bad', upstreamUrl: db.url, logger });
    const good = drive(log, 'i-bad', 5);
    // A time the store cannot read (SQLSTATE 22007): the COPY of the whole batch fails.
    const bad = sampleRecord({ instanceId: 'i-bad', sessionId: 'x', seq: 0, time: 'not a time' });
    log.decide(bad);
    const after = drive(log, 'i-bad', 5);
    expect(await log.flushToStore()).toBe(true);
    await log.close();
    const stored = await db.sql<{ id: string }>(
      "SELECT id FROM pgwarden_decisions WHERE instance_id = 'i-bad'",
    );
    expect(stored.map((r) => r.id).sort()).toEqual([...good, ...after].sort());
    const rejected = readFileSync(join(spoolRoot, instanceDirName('i-bad'), 'rejected.ndjson'), 'utf8');
    expect(rejected).toContain(bad.id);
  });

  it('continues the same chain after a restart with the same instance id', async () => {
    const a = await startDecisionLog(config(), { instanceId: 'i-restart', upstreamUrl: db.url, logger });
    drive(a, 'i-restart', 10);
    await a.close();
    const b = await startDecisionLog(config(), { instanceId: 'i-restart', upstreamUrl: db.url, logger });
    expect(b.stats().chainSeq).toBeGreaterThan(10);
    drive(b, 'i-restart', 10);
    await b.flushToStore();
    await b.close();
    const r = await verifyInstance(reader.pool, 'i-restart', undefined);
    expect(r.ok).toBe(true);
    expect(r.checked).toBe(2 * (10 + 7));
  });

  it('creates the audit database on the upstream server when no store URL is given', async () => {
    const name = `pgwarden_audit_${Math.random().toString(16).slice(2, 8)}`;
    const cfg = auditConfigSchema.parse({
      ndjson: 'off',
      store: { database: name, pollIntervalMs: 10 },
      spool: { dir: spoolRoot },
    });
    const log = await startDecisionLog(cfg, { instanceId: 'i-create', upstreamUrl: db.url, logger });
    drive(log, 'i-create', 5);
    expect(await log.flushToStore()).toBe(true);
    await log.close();
    const u = new URL(db.url);
    u.pathname = `/${name}`;
    const r2 = new AuditReader(u.toString());
    const page = await r2.search({}, { limit: 10 });
    expect(page.items).toHaveLength(5);
    await r2.close();
    await db.sql(`DROP DATABASE ${name} WITH (FORCE)`);
  });

  it('keys the chain with an HMAC and reports a chain recomputed without the key', async () => {
    const key = 'k'.repeat(40);
    const log = await startDecisionLog(config({ hmacKey: key }), {
      instanceId: 'i-hmac',
      upstreamUrl: db.url,
      logger,
    });
    drive(log, 'i-hmac', 6);
    await log.flushToStore();
    await log.close();
    expect((await verifyInstance(reader.pool, 'i-hmac', key)).ok).toBe(true);
    const wrong = await verifyInstance(reader.pool, 'i-hmac', 'x'.repeat(40));
    expect(wrong.problem?.kind).toBe('forged');
  });

  it('keeps an outcome that arrives after its decision was delivered (a long statement)', async () => {
    const log = await startDecisionLog(config(), { instanceId: 'i-late', upstreamUrl: db.url, logger });
    const r = sampleRecord({ instanceId: 'i-late', sessionId: 's-late', seq: 0 });
    log.decide(r);
    expect(await log.flushToStore()).toBe(true);
    log.complete(sampleOutcome(r, { rows: 77, command: 'SELECT 77' }));
    expect(await log.flushToStore()).toBe(true);
    await log.close();
    const late = await db.sql('SELECT record_id FROM pgwarden_outcomes WHERE record_id = $1', [r.id]);
    expect(late).toHaveLength(1);
    expect((await reader.get(r.id))?.outcome).toMatchObject({ rows: 77 });
    expect(await verifyInstance(reader.pool, 'i-late', undefined)).toMatchObject({ ok: true, checked: 2 });
  });
});

describe('values the store could not index', () => {
  it('delivers and finds a record whose names are 10,000 characters long', async () => {
    // Random text, so the store cannot compress it under the index entry limit.
    const long = (tag: string): string =>
      `${tag}-` + Array.from({ length: 10_000 }, () => Math.random().toString(36).slice(2, 3)).join('');
    const agent = long('agent');
    const human = long('human');
    const tenant = long('tenant');
    const table = `public.${long('t')}`;
    const log = await startDecisionLog(config(), { instanceId: 'i-long', upstreamUrl: db.url, logger });
    const r = sampleRecord({
      instanceId: 'i-long',
      sessionId: 's-long',
      seq: 0,
      agent,
      human,
      tenant,
      tables: [table],
      ruleIds: [long('rule')],
      flags: [long('flag')],
    });
    log.decide(r);
    const next = drive(log, 'i-long', 3);
    expect(await log.flushToStore()).toBe(true);
    await log.close();
    // Every facet is bounded, and the record behind it was not held back.
    const stored = await db.sql<{ id: string; facets: string[] }>(
      "SELECT id, facets FROM pgwarden_decisions WHERE instance_id = 'i-long'",
    );
    expect(stored.map((x) => x.id).sort()).toEqual([r.id, ...next].sort());
    for (const row of stored) for (const f of row.facets) expect(f.length).toBeLessThan(FACET_MAX_CHARS + 40);
    // Searches by the full values find it (and only it); the stored columns keep the whole value.
    for (const f of [{ agent }, { human }, { tenant }, { table }, { agent, tenant, table }]) {
      const page = await reader.search(f, { limit: 10 });
      expect(page.items.map((d) => d.id)).toEqual([r.id]);
      expect(page.items[0]?.agent).toBe(agent);
    }
    // A value sharing the first 200 characters but not the rest does not match.
    expect((await reader.search({ agent: agent.slice(0, 250) }, { limit: 10 })).items).toHaveLength(0);
    expect(await verifyInstance(reader.pool, 'i-long', undefined)).toMatchObject({ ok: true });
  });

  it('keeps short values verbatim and cuts long ones without splitting a surrogate pair', () => {
    const body = { human: 'alice@acme.test', agent: `${'x'.repeat(FACET_MAX_CHARS - 1)}🙂tail` };
    const facets = facetsOf(body, 'i');
    expect(facets).toContain('h:alice@acme.test');
    const a = facets.find((f) => f.startsWith('a:')) as string;
    expect(a).toMatch(new RegExp(`^a:x{${FACET_MAX_CHARS - 1}}#[0-9a-f]{32}$`));
    expect(facetsOf({ agent: 'y'.repeat(FACET_MAX_CHARS) }, 'i')).toContain(
      `a:${'y'.repeat(FACET_MAX_CHARS)}`,
    );
  });

  it('sets aside a line the store refuses with SQLSTATE 54000 and delivers the records behind it', async () => {
    const log = await startDecisionLog(config(), { instanceId: 'i-54', upstreamUrl: db.url, logger });
    drive(log, 'i-54', 1);
    expect(await log.flushToStore()).toBe(true);
    // Stands for any program limit the store may hit on one row (index entry size, say).
    await db.sql(`CREATE FUNCTION pgw_test_refuse_54() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.sql LIKE '%refuse-me-54%' THEN
          RAISE EXCEPTION 'index row size 7016 exceeds maximum 2712' USING ERRCODE = '54000';
        END IF;
        RETURN NEW;
      END $$`);
    await db.sql(`CREATE TRIGGER pgw_test_refuse_54 BEFORE INSERT ON pgwarden_decisions
      FOR EACH ROW EXECUTE FUNCTION pgw_test_refuse_54()`);
    try {
      const before = drive(log, 'i-54', 4);
      const bad = sampleRecord({
        instanceId: 'i-54',
        sessionId: 's-54',
        seq: 0,
        sql: "SELECT 'refuse-me-54'",
      });
      log.decide(bad);
      const after = drive(log, 'i-54', 4);
      expect(await log.flushToStore()).toBe(true);
      await log.close();
      const stored = await db.sql<{ id: string }>(
        "SELECT id FROM pgwarden_decisions WHERE instance_id = 'i-54'",
      );
      const ids = new Set(stored.map((x) => x.id));
      for (const id of [...before, ...after]) expect(ids.has(id)).toBe(true);
      expect(ids.has(bad.id)).toBe(false);
      const rejected = join(spoolRoot, instanceDirName('i-54'), 'rejected.ndjson');
      expect(readFileSync(rejected, 'utf8')).toContain(bad.id);
      expect(statSync(rejected).mode & 0o777).toBe(0o600);
      // Nothing is left waiting in the spool.
      expect(log.stats().spool?.unshippedBytes ?? 0).toBeLessThan(200);
    } finally {
      await db.sql('DROP TRIGGER IF EXISTS pgw_test_refuse_54 ON pgwarden_decisions');
      await db.sql('DROP FUNCTION IF EXISTS pgw_test_refuse_54()');
    }
  });
});

describe('file modes', () => {
  it('creates spool directories 0700 and spool, cursor and NDJSON files 0600, whatever the umask', async () => {
    const old = process.umask(0o022);
    try {
      const root = join(spoolRoot, 'modes', 'spool');
      const ndjson = join(spoolRoot, 'modes-out', 'logs', 'decisions.ndjson');
      const log = await startDecisionLog(config({ spool: { dir: root }, ndjson }), {
        instanceId: 'i-modes',
        upstreamUrl: db.url,
        logger,
      });
      drive(log, 'i-modes', 6);
      expect(await log.flushToStore()).toBe(true);
      const own = join(root, instanceDirName('i-modes'));
      const mode = (p: string): number => statSync(p).mode & 0o777;
      // The NDJSON output follows the spool a few milliseconds behind.
      for (let i = 0; i < 100 && !existsSync(join(own, 'ndjson-cursor.json')); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(mode(join(spoolRoot, 'modes'))).toBe(0o700);
      expect(mode(root)).toBe(0o700);
      expect(mode(own)).toBe(0o700);
      const files = readdirSync(own);
      expect(files).toEqual(expect.arrayContaining(['owner.json', 'cursor.json', 'ndjson-cursor.json']));
      expect(files.some((f) => f.startsWith('seg-'))).toBe(true);
      for (const f of files) expect([f, mode(join(own, f))]).toEqual([f, 0o600]);
      await log.close();
      expect(mode(ndjson)).toBe(0o600);
      expect(mode(join(spoolRoot, 'modes-out', 'logs'))).toBe(0o700);
      expect(readFileSync(ndjson, 'utf8')).toContain('"msg":"decision"');

      // The NDJSON writer used without a spool (durable: false, or a full spool) too.
      const direct = join(spoolRoot, 'modes-direct', 'out.ndjson');
      const out = openNdjson(direct);
      out.write('{"msg":"x"}\n');
      await out.close();
      expect(mode(direct)).toBe(0o600);
      expect(mode(join(spoolRoot, 'modes-direct'))).toBe(0o700);
    } finally {
      process.umask(old);
    }
  });

  it('closes a spool directory left 0755 by an older version when it opens it again', async () => {
    const { chmodSync, mkdirSync } = await import('node:fs');
    const root = join(spoolRoot, 'modes-old');
    const own = join(root, instanceDirName('i-old'));
    mkdirSync(own, { recursive: true, mode: 0o755 });
    chmodSync(own, 0o755);
    const log = await startDecisionLog(config({ spool: { dir: root } }), {
      instanceId: 'i-old',
      upstreamUrl: db.url,
      logger,
    });
    await log.close();
    expect(statSync(own).mode & 0o777).toBe(0o700);
  });
});
