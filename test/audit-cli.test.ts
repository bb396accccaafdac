import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi } from '../src/api/server.js';
import { auditConfigSchema } from '../src/audit/config.js';
import { startDecisionLog } from '../src/audit/decision-log.js';
import type { DecisionRecord } from '../src/audit/record.js';
import { sampleOutcome, sampleRecord } from '../src/audit/sample-records.js';
import { AuditReader } from '../src/audit/store-reader.js';
import { auditCommand } from '../src/cli/audit.js';
import { logCommand } from '../src/cli/log.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';

const logger = pino({ level: 'silent' });
const TOKEN = 'cli-responder-token-'.padEnd(40, 'c');
let db: TestDatabase;
let dir: string;
let configFile: string;
const records: DecisionRecord[] = [];

async function run(
  cmd: typeof logCommand,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await cmd(args, { stdout: (s) => (out += s + '\n'), stderr: (s) => (err += s + '\n') });
  return { code, out, err };
}

beforeAll(async () => {
  db = await createTestDatabase('audit_cli');
  dir = mkdtempSync(join(tmpdir(), 'pgw-cli-'));
  const cfg = auditConfigSchema.parse({
    ndjson: 'off',
    store: { url: db.url, pollIntervalMs: 10 },
    spool: { dir },
  });
  const log = await startDecisionLog(cfg, { instanceId: 'cli-1', upstreamUrl: db.url, logger });
  for (let seq = 0; seq < 5; seq++) {
    for (const human of ['alice@acme.test', 'bob@acme.test']) {
      const r = sampleRecord({
        instanceId: 'cli-1',
        sessionId: `sess-${human.slice(0, 3)}`,
        seq,
        human,
        verdict: seq === 2 ? 'deny' : seq === 3 ? 'rewrite' : 'allow',
        sql: `SELECT ${seq} FROM orders`,
      });
      records.push(r);
      log.decide(r);
      if (r.verdict !== 'deny') log.complete(sampleOutcome(r, { rows: seq }));
    }
  }
  expect(await log.flushToStore()).toBe(true);
  await log.close();
  // A pgwarden config whose default store (audit.store.database on the upstream server) is the test database.
  configFile = join(dir, 'pgwarden.yaml');
  writeFileSync(
    configFile,
    [
      'upstream:',
      `  host: ${db.host}`,
      `  port: ${db.port}`,
      `  database: ${db.name}`,
      `  user: ${db.user}`,
      `  password: ${db.password}`,
      'auth:',
      `  hs256Secret: ${'s'.repeat(32)}`,
      'audit:',
      '  store:',
      `    database: ${db.name}`,
    ].join('\n'),
  );
});

afterAll(async () => {
  await db.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('pgwarden log', () => {
  it('searches the store with filters, as a table or NDJSON', async () => {
    const t = await run(logCommand, [
      '--database-url',
      db.url,
      '--human',
      'bob@acme.test',
      '--verdict',
      'allow',
    ]);
    expect(t.code).toBe(0);
    const lines = t.out.trim().split('\n');
    expect(lines[0]).toMatch(/^TIME\s+HUMAN\s+AGENT/);
    expect(lines).toHaveLength(1 + 3);
    const j = await run(logCommand, ['--config', configFile, '--verdict', 'deny', '--json']);
    expect(j.code).toBe(0);
    const items = j.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as DecisionRecord);
    expect(items.map((d) => d.human).sort()).toEqual(['alice@acme.test', 'bob@acme.test']);
  });

  it('pages with --limit and --cursor', async () => {
    const first = await run(logCommand, ['--database-url', db.url, '--limit', '4', '--json']);
    const cursor = /--cursor (\S+)/.exec(first.err)?.[1];
    expect(cursor).toBeDefined();
    const second = await run(logCommand, [
      '--database-url',
      db.url,
      '--limit',
      '100',
      '--json',
      '--cursor',
      cursor as string,
    ]);
    expect(first.out.trim().split('\n').length + second.out.trim().split('\n').length).toBe(records.length);
  });

  it('replays a session and aggregates, also through the HTTP API', async () => {
    const cfg = auditConfigSchema.parse({
      api: { port: 0, tokens: [{ name: 'cli', token: TOKEN, roles: ['responder'] }] },
    });
    const reader = new AuditReader(db.url);
    const api = await startApi(cfg, { reader, logger });
    try {
      const replay = await run(logCommand, ['--api-url', api.url, '--token', TOKEN, '--replay', 'sess-ali']);
      expect(replay.code).toBe(0);
      const seqs = replay.out
        .trim()
        .split('\n')
        .slice(2)
        .map((l) => Number(l.split(/\s+/)[0]));
      expect(seqs).toEqual([0, 1, 2, 3, 4]);
      const agg = await run(logCommand, [
        '--api-url',
        api.url,
        '--token',
        TOKEN,
        '--aggregate',
        'verdict',
        '--json',
      ]);
      const buckets = agg.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { key: string; count: number });
      expect(buckets.find((b) => b.key === 'allow')?.count).toBe(6);
      const noToken = await run(logCommand, ['--api-url', api.url]);
      expect(noToken.code).toBe(2);
    } finally {
      await api.close();
      await reader.close();
    }
  });

  it('refuses unknown options and bad values with status 2', async () => {
    expect((await run(logCommand, ['--database-url', db.url, '--hmuan', 'x'])).code).toBe(2);
    expect((await run(logCommand, ['--database-url', db.url, '--verdict', 'maybe'])).code).toBe(2);
    expect((await run(logCommand, [])).code).toBe(2);
  });
});

describe('pgwarden audit verify', () => {
  it('exits 0 on an intact chain and 1 with the first altered record after an edit', async () => {
    const ok = await run(auditCommand, ['verify', '--config', configFile]);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^ok\s+cli-1: 18 links intact/);
    const victim = records[4] as DecisionRecord;
    await db.sql(`UPDATE pgwarden_decisions SET body = replace(body, 'SELECT 2', 'SELECT 9') WHERE id = $1`, [
      victim.id,
    ]);
    const bad = await run(auditCommand, ['verify', '--database-url', db.url]);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain(`BROKEN   cli-1: altered`);
    expect(bad.out).toContain(victim.id);
    const json = await run(auditCommand, ['verify', '--database-url', db.url, '--json']);
    expect(JSON.parse(json.out)).toMatchObject({
      ok: false,
      instances: [{ problem: { kind: 'altered', recordId: victim.id } }],
    });
  });

  it('exits 3, not 1, when the store cannot be read', async () => {
    const r = await run(auditCommand, ['verify', '--database-url', 'postgres://u:p@127.0.0.1:1/none']);
    expect(r.code).toBe(3);
    expect(r.err).toContain('cannot read the decision store');
  });
});

describe('pgwarden log escapes what agents wrote', () => {
  it('shows control and bidi characters as visible escapes in table, aggregate and replay views', async () => {
    const evil = {
      human: 'mallory@acme.test\n2026-11-21T07:40:01.123Z  alice@acme.test',
      agent: 'bot\x1b]0;pwned\x07\x1b[2J',
      tenant: 'acme\u202egnp.exe\u2066',
      sql: 'SELECT 1 -- \x1b[31mred\x9b0m\r\ttab',
      ruleIds: ['tables.public.orders\x1b[8m'],
    };
    const log = await startDecisionLog(
      auditConfigSchema.parse({ ndjson: 'off', store: { url: db.url, pollIntervalMs: 10 }, spool: { dir } }),
      { instanceId: 'cli-evil', upstreamUrl: db.url, logger },
    );
    for (let seq = 0; seq < 2; seq++) {
      log.decide(sampleRecord({ instanceId: 'cli-evil', sessionId: 'sess-evil', seq, ...evil }));
    }
    expect(await log.flushToStore()).toBe(true);
    await log.close();

    // Raw: anything a terminal acts on, except the newline that ends each printed line.
    // eslint-disable-next-line no-control-regex
    const raw = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
    const views = {
      table: [['--instance', 'cli-evil'], 1 + 2],
      aggregateHuman: [['--instance', 'cli-evil', '--aggregate', 'human'], 1 + 1],
      aggregateAgent: [['--instance', 'cli-evil', '--aggregate', 'agent'], 1 + 1],
      aggregateRule: [['--instance', 'cli-evil', '--aggregate', 'rule'], 1 + 1],
      replay: [['--replay', 'sess-evil'], 1 + 1 + 2],
    } as const;
    for (const [name, [args, lines]] of Object.entries(views)) {
      const r = await run(logCommand, ['--database-url', db.url, ...args]);
      expect(r.code, name).toBe(0);
      expect(raw.test(r.out), `${name}: ${JSON.stringify(r.out)}`).toBe(false);
      // A newline inside a value never starts a forged line.
      expect(r.out.trim().split('\n'), name).toHaveLength(lines);
    }
    const table = (await run(logCommand, ['--database-url', db.url, '--instance', 'cli-evil'])).out;
    expect(table).toContain('\\x1b]0;pwned\\x07');
    expect(table).toContain('mallory@acme.test\\n2026');
    expect(table).toContain('acme\\u202egnp');
    expect(table).toContain('\\x1b[31mred\\x9b0m\\r\\ttab');
    const replay = (await run(logCommand, ['--database-url', db.url, '--replay', 'sess-evil'])).out;
    expect(replay.split('\n')[0]).toBe(
      'session sess-evil: mallory@acme.test\\n2026-11-21T07:40:01.123Z  alice@acme.test via ' +
        'bot\\x1b]0;pwned\\x07\\x1b[2J in acme\\u202egnp.exe\\u2066',
    );
    const agg = (
      await run(logCommand, ['--database-url', db.url, '--instance', 'cli-evil', '--aggregate', 'agent'])
    ).out;
    expect(agg).toContain('bot\\x1b]0;pwned\\x07\\x1b[2J');
    // --json keeps the exact values for tools, with nothing raw a terminal acts on either (JSON
    // escapes C0 controls itself; C1, bidi controls and line separators are escaped too).
    const json = (await run(logCommand, ['--database-url', db.url, '--instance', 'cli-evil', '--json'])).out;
    expect(raw.test(json), JSON.stringify(json)).toBe(false);
    const first = JSON.parse(json.trim().split('\n')[0] as string) as DecisionRecord;
    expect([first.agent, first.tenant, first.sql]).toEqual([evil.agent, evil.tenant, evil.sql]);
  });
});
