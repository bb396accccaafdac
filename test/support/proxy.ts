import pg from 'pg';
import { pino, type Logger } from 'pino';
import { createMemorySink } from './memory-sink.js';
import type { DecisionSink } from '../../src/audit/record.js';
import { buildConfig } from '../../src/config/load.js';
import type { Config, ConfigInput } from '../../src/config/schema.js';
import { mintToken, type MintOptions } from '../../src/identity/token.js';
import { createStrictDefaultJudge } from './read-only-judge.js';
import { loadCatalog } from '../../src/policy/catalog.js';
import { createPolicyJudge } from '../../src/policy/engine.js';
import { loadRules } from '../../src/policy/rules-load.js';
import type { Judge } from '../../src/policy/verdict.js';
import { loadParser } from '../../src/sql/parse.js';
import { startPgwarden, type RunningPgwarden } from '../../src/server.js';
import type { TestDatabase } from './db.js';

export const TEST_SECRET = 'test-secret-test-secret-test-secret-0123';

export interface TestProxy {
  readonly proxy: RunningPgwarden;
  readonly config: Config;
  readonly sink: ReturnType<typeof createMemorySink>;
  readonly port: number;
  /** A token for the tenant (default acme, human alice@acme.test, agent support-bot). */
  token(opts?: Partial<MintOptions>): Promise<string>;
  /** A postgres:// URL for the proxy carrying a fresh token. */
  url(opts?: Partial<MintOptions>): Promise<string>;
  close(): Promise<void>;
}

export interface TestProxyOptions {
  readonly tables?: readonly string[];
  readonly judge?: Judge;
  readonly sink?: DecisionSink;
  readonly config?: Partial<ConfigInput>;
  /** Where pgwarden logs (default: nowhere). */
  readonly logger?: Logger;
}

/** pgwarden in front of a test database, listening on a free port. */
export async function startTestProxy(db: TestDatabase, opts: TestProxyOptions = {}): Promise<TestProxy> {
  await loadParser();
  const config = buildConfig({
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { host: db.host, port: db.port, database: db.name, user: db.user, password: db.password },
    auth: { hs256Secret: TEST_SECRET, failureDelayMs: 50 },
    logLevel: 'silent',
    ...opts.config,
  });
  const tables = Object.fromEntries(
    (opts.tables ?? []).map((t) => [t, { scope: 'global' as const, access: ['select' as const] }]),
  );
  const judge = opts.judge ?? createStrictDefaultJudge({ version: 1, tenant: { claim: 'tenant' }, tables });
  const memory = createMemorySink();
  const sink: DecisionSink = opts.sink ?? memory;
  const proxy = await startPgwarden({
    config,
    judge,
    sink,
    logger: opts.logger ?? pino({ level: 'silent' }),
  });
  const token = (o: Partial<MintOptions> = {}): Promise<string> =>
    mintToken(config.auth, {
      tenant: 'acme',
      human: 'alice@acme.test',
      agent: 'support-bot',
      ttlSeconds: 600,
      ...o,
    });
  return {
    proxy,
    config,
    sink: memory,
    port: proxy.port,
    token,
    url: async (o) => `postgres://support-bot:${await token(o)}@127.0.0.1:${proxy.port}/${db.name}`,
    close: () => proxy.close(),
  };
}

/** Runs `f` with a node-postgres client connected to `url`, and ends the client whatever happens. */
export async function withPgClient<T>(url: string, f: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await f(c);
  } finally {
    await c.end();
  }
}

/** pgwarden judging by the demo rules (rules/) against `db`'s live catalog, and acme's URL to it. */
export async function startDemoRulesProxy(db: TestDatabase): Promise<{ proxy: TestProxy; url: string }> {
  const judge = createPolicyJudge(await loadRules(['rules']), await loadCatalog(db.url, 'public'), {
    searchPath: 'public',
  });
  const proxy = await startTestProxy(db, { judge });
  return { proxy, url: await proxy.url({ tenant: 'acme', human: 'alice@acme.test' }) };
}
