import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, renameSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML, { stringify } from 'yaml';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { freePort } from './support/embedded.js';

const run = promisify(execFile);
const repo = new URL('../', import.meta.url).pathname;
const bin = join(repo, 'bin/pgwarden.js');

let db: TestDatabase;
let dir: string;
let configFile: string;
let rulesDir: string;
let port: number;
let child: ChildProcess;
let stderr = '';

async function waitForListening(): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!stderr.includes('listening')) {
    if (child.exitCode !== null) throw new Error(`pgwarden exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`pgwarden did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until `done` holds, for at most 20 s. */
async function until(done: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function token(tenant: string): Promise<string> {
  const { stdout } = await run(process.execPath, [
    bin,
    'token',
    '--config',
    configFile,
    '--tenant',
    tenant,
    '--human',
    `h@${tenant}.test`,
    '--agent',
    'cli-bot',
  ]);
  return stdout.trim();
}

beforeAll(async () => {
  db = await createTestDatabase('cli');
  await db.sql(readFileSync(join(repo, 'src/demo/seed.sql'), 'utf8'));
  dir = mkdtempSync(join(tmpdir(), 'pgwarden-cli-'));
  rulesDir = join(dir, 'rules');
  await run('cp', ['-r', join(repo, 'rules'), rulesDir]);
  port = await freePort();
  configFile = join(dir, 'pgwarden.yaml');
  writeFileSync(
    configFile,
    stringify({
      listen: { host: '127.0.0.1', port },
      upstream: { host: db.host, port: db.port, database: db.name, user: db.user, password: db.password },
      auth: { hs256Secret: 'cli-test-secret-cli-test-secret-0123456789' },
      rules: { paths: [rulesDir] },
      audit: {
        ndjson: join(dir, 'decisions.ndjson'),
        store: { database: `${db.name}_audit` },
        spool: { dir: join(dir, 'spool') },
      },
      logLevel: 'info',
    }),
  );
  // Started as production often is, with a V8 heap flag: Node refuses it to worker threads, and
  // with it once refused every thread pgwarden starts (the decision log's shipper, the judge).
  child = spawn(process.execPath, ['--max-old-space-size=1024', bin, 'start', '--config', configFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  await waitForListening();
});

afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await db?.drop();
  const admin = new pg.Client({ connectionString: db.url });
  await admin
    .connect()
    .then(() => admin.query(`DROP DATABASE IF EXISTS ${db.name}_audit WITH (FORCE)`))
    .catch(() => {});
  await admin.end().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

/** A client of pgwarden connected as the agent cli-bot with a token for `tenant`. */
async function agentClient(tenant: string): Promise<pg.Client> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port,
    database: db.name,
    user: 'cli-bot',
    password: await token(tenant),
  });
  await c.connect();
  return c;
}

describe('pgwarden start', () => {
  it('serves scoped queries with tokens minted by `pgwarden token`', async () => {
    const c = await agentClient('globex');
    const { rows } = await c.query<{ org_id: string }>('SELECT DISTINCT org_id FROM orders');
    expect(rows).toEqual([{ org_id: 'globex' }]);
    await c.end();
    // NDJSON lines are batched, but reach the file within about a second even at low traffic.
    const file = join(dir, 'decisions.ndjson');
    const deadline = Date.now() + 5000;
    let lines = '';
    while (!lines.includes('h@globex.test') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      lines = existsSync(file) ? readFileSync(file, 'utf8') : '';
    }
    expect(lines).toContain('h@globex.test');
  });

  it('reloads rules on SIGHUP, and keeps the old rules when the new ones are invalid', async () => {
    const rulesFile = join(rulesDir, 'demo.yaml');
    const original = readFileSync(rulesFile, 'utf8');
    writeFileSync(rulesFile, `${original}\nnot_a_key: true\n`);
    child.kill('SIGHUP');
    // A reload reads the catalog again: on a loaded machine that takes seconds, not a fixed time.
    await until(() => /refused|not_a_key/.test(stderr));
    const c = await agentClient('acme');
    expect((await c.query('SELECT count(*)::int AS n FROM products')).rows).toEqual([{ n: 3 }]);
    // Valid new rules without products: products disappears for agents.
    writeFileSync(rulesFile, original.replace(/ {2}public\.products:\n(?: {4}.*\n)+/, ''));
    child.kill('SIGHUP');
    const refused = async (): Promise<boolean> =>
      c.query('SELECT count(*) FROM products').then(
        () => false,
        (err: { code?: string }) => err.code === '42501',
      );
    await until(refused);
    await expect(c.query('SELECT count(*) FROM products')).rejects.toMatchObject({ code: '42501' });
    await c.end();
    writeFileSync(rulesFile, original);
  });

  it('reopens the NDJSON file on SIGHUP, so logrotate can move it away', async () => {
    const file = join(dir, 'decisions.ndjson');
    const query = async (human: string): Promise<void> => {
      const c = await agentClient('acme');
      await c.query(`SELECT 1 AS ${human}`);
      await c.end();
    };
    const waitFor = async (f: string, text: string): Promise<void> => {
      const deadline = Date.now() + 5000;
      while (!(existsSync(f) && readFileSync(f, 'utf8').includes(text)) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 200));
      expect(readFileSync(f, 'utf8')).toContain(text);
    };
    await query('before_rotation');
    await waitFor(file, 'before_rotation');
    renameSync(file, `${file}.1`);
    child.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 500));
    await query('after_rotation');
    await waitFor(file, 'after_rotation');
    expect(readFileSync(`${file}.1`, 'utf8')).not.toContain('after_rotation');
  });

  it('shuts down cleanly on SIGTERM', async () => {
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    expect(readFileSync(join(dir, 'decisions.ndjson'), 'utf8')).toContain('session_end');
  });

  it('`pgwarden api` serves the decision log from the store in a process of its own, the proxy stopped', async () => {
    const apiPort = await freePort();
    const token = 'cli-responder-token-'.padEnd(40, 'r');
    const config = YAML.parse(readFileSync(configFile, 'utf8')) as { audit: Record<string, unknown> };
    config.audit.api = { port: apiPort, tokens: [{ name: 'oncall', token, roles: ['responder'] }] };
    const apiConfig = join(dir, 'api.yaml');
    writeFileSync(apiConfig, stringify(config));
    const api = spawn(process.execPath, [bin, 'api', '--config', apiConfig], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let out = '';
    api.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    try {
      const deadline = Date.now() + 30_000;
      while (!out.includes('pgwarden api listening')) {
        if (api.exitCode !== null) throw new Error(`pgwarden api exited ${api.exitCode}: ${out}`);
        if (Date.now() > deadline) throw new Error(`pgwarden api did not start: ${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const base = `http://127.0.0.1:${apiPort}`;
      const res = await fetch(`${base}/api/v1/decisions?human=h@globex.test`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(200);
      const page = (await res.json()) as { items: { human: string; sql: string | null }[] };
      expect(page.items.length).toBeGreaterThan(0);
      expect(page.items.every((d) => d.human === 'h@globex.test')).toBe(true);
      expect(page.items.map((d) => d.sql)).toContain('SELECT DISTINCT org_id FROM orders');
      expect((await fetch(`${base}/api/v1/decisions`)).status).toBe(401);
      expect((await fetch(`${base}/`)).status).toBe(200);
    } finally {
      api.kill('SIGTERM');
    }
    expect(await new Promise<number | null>((resolve) => api.once('exit', resolve))).toBe(0);
  });
});
