/**
 * Pipelined queries on one connection (postgres.js sends each query without waiting for the one
 * before): directly, through PgBouncer (session mode) and through pgwarden, in one run, and the
 * ratios. What drivers that pipeline (postgres.js, psycopg's pipeline mode, asyncpg's executemany,
 * pgJDBC batches) see of pgwarden. Not a test: nothing here asserts a figure.
 * Usage: node --import tsx bench/pipeline.ts [--queries N] [--rounds N]
 */
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { startBenchServer } from './lib/server.js';
import { startPgBouncer } from './lib/pgbouncer.js';
import { startPgwarden } from './lib/pgwarden.js';
import { cleanup, installCleanupHandlers, run } from './lib/processes.js';
import { libpqEnv, type Endpoint } from './lib/targets.js';
import { variants } from './lib/variants.js';

const { values } = parseArgs({
  options: { queries: { type: 'string' }, rounds: { type: 'string' } },
});
const queries = Number(values.queries ?? 20_000);
const rounds = Number(values.rounds ?? 3);
if (!Number.isInteger(queries) || queries < 1 || !Number.isInteger(rounds) || rounds < 1)
  throw new Error('--queries and --rounds take positive integers');

/** Milliseconds for `queries` queries sent at once on one connection, each with its own value. */
async function pipelined(e: Endpoint): Promise<number> {
  const sql = postgres({
    host: e.host,
    port: e.port,
    database: e.database,
    username: e.user,
    password: e.password,
    max: 1,
    // Its start-up type lookup reads pg_catalog beyond what pgwarden's benchmark rules list.
    fetch_types: false,
    onnotice: () => {},
  });
  try {
    await sql`SELECT 1`;
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: queries }, (_, i) => sql`SELECT ${i}::int AS i, repeat('z', 100) AS pad`),
    );
    const ms = performance.now() - started;
    if (results[queries - 1]?.[0]?.i !== queries - 1) throw new Error('a pipelined answer went astray');
    return ms;
  } finally {
    await sql.end();
  }
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const log = (msg: string): void => console.error(`[pipeline] ${msg}`);
  const direct = await startBenchServer(50);
  // The benchmark rules list pgbench's tables; the queries read none of them.
  await run('pgbench', ['-i', '-q', '-s', '1'], { env: libpqEnv(direct) });
  const v = variants.core;
  const w = v.pgwardens[0]!;
  const targets: [string, Endpoint][] = [
    ['direct', direct],
    ['pgbouncer', await startPgBouncer(direct, 4)],
    [
      'pgwarden',
      await startPgwarden(direct, {
        name: 'pgwarden',
        rulesPaths: v.rulesPaths,
        audit: w.audit(),
        tenant: v.tenant,
        tokenTtlSeconds: 3600,
        maxClients: 4,
      }),
    ],
  ];
  for (const [t, e] of targets) {
    log(`warm-up ${t}`);
    await pipelined(e);
  }
  const ms = new Map<string, number[]>();
  for (let r = 1; r <= rounds; r++)
    for (const [t, e] of targets) {
      const m = await pipelined(e);
      log(`round ${r} ${t.padEnd(10)} ${Math.round(m)} ms`);
      ms.set(t, [...(ms.get(t) ?? []), m]);
    }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const [d, b, p] = ['direct', 'pgbouncer', 'pgwarden'].map((t) => median(ms.get(t) ?? []));
  const qps = (x: number | undefined): string =>
    Math.round((queries * 1000) / (x ?? NaN)).toLocaleString('en');
  console.log(
    `\n${queries} queries pipelined on one connection (postgres.js), median of ${rounds} round(s):\n`,
  );
  console.log('| direct q/s | pgbouncer q/s | pgwarden q/s | pgwarden/pgbouncer | pgwarden/direct |');
  console.log('| ---: | ---: | ---: | ---: | ---: |');
  console.log(
    `| ${qps(d)} | ${qps(b)} | ${qps(p)} | ${((b ?? NaN) / (p ?? NaN)).toFixed(2)}x | ${((d ?? NaN) / (p ?? NaN)).toFixed(2)}x |`,
  );
}

try {
  await main();
} catch (err) {
  console.error(`\npipeline bench failed: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
