/**
 * The decision log's own cost, in one run (not a timed test; compare the figures of one run):
 *
 * 1. The append path a statement waits for: decide() + complete() per statement with the log
 *    off, NDJSON only, durable (spool, writeSync per decision, fsync batched) and durable with
 *    NDJSON. CPU microseconds per statement (process.cpuUsage, less disturbed by other load than
 *    wall time) and wall time, best of three interleaved rounds. The store is unreachable on
 *    purpose: delivery runs on the shipper's thread and its cost depends on the store.
 * 2. With --store: delivery to a real PostgreSQL (embedded, started here): statements per second
 *    through one shipper connection, and the shipper thread's share, with and without the SQL
 *    trigram index.
 *
 *   node --import tsx bench/audit-append.ts [--records 200000] [--store]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import pino from 'pino';
import { entryLine, outcomeBody, recordBody } from '../src/audit/canonical.js';
import { Chain, GENESIS } from '../src/audit/chain.js';
import { auditConfigSchema, type AuditConfigInput } from '../src/audit/config.js';
import { startDecisionLog } from '../src/audit/decision-log.js';
import type { DecisionRecord } from '../src/audit/record.js';
import { sampleOutcome, sampleRecord } from '../src/audit/sample-records.js';
import type { Lines } from '../src/audit/spool-reader.js';
import { ensureDatabase, ensureSchema } from '../src/audit/store-schema.js';
import { deliver } from '../src/audit/store-writer.js';
import { startEmbeddedPostgres } from '../test/support/embedded.js';

const usage = `usage: node --import tsx bench/audit-append.ts [--records N] [--store]
  --records N   statements per append run (default 200000)
  --store       also measure delivery to a real PostgreSQL (embedded, started here)`;

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '200000' },
    store: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const N = Number(values.records);
const DOWN = 'postgres://u:p@127.0.0.1:1/none';
const logger = pino({ level: 'silent' });

interface Cost {
  cpuMicros: number;
  wallMicros: number;
}

async function appendRun(input: AuditConfigInput, records: DecisionRecord[]): Promise<Cost> {
  const dir = mkdtempSync(join(tmpdir(), 'pgw-bench-'));
  const cfg = auditConfigSchema.parse({
    ...input,
    ndjson: input.ndjson === 'file' ? join(dir, 'decisions.ndjson') : input.ndjson,
    store: { url: DOWN, maxRetryDelayMs: 60_000 },
    spool: { dir: join(dir, 'spool'), maxBytes: 4 * 1024 * 1024 * 1024 },
  });
  const log = await startDecisionLog(cfg, { instanceId: 'bench', upstreamUrl: DOWN, logger });
  const outcomes = records.map((r) => sampleOutcome(r));
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  // Chunks with an event-loop turn between them, as under real load (timers and flushes run).
  for (let i = 0; i < records.length; i += 200) {
    for (let k = i; k < Math.min(i + 200, records.length); k++) {
      log.decide(records[k] as DecisionRecord);
      log.complete(outcomes[k] as ReturnType<typeof sampleOutcome>);
    }
    await new Promise((r) => setImmediate(r));
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  await log.close();
  rmSync(dir, { recursive: true, force: true });
  return { cpuMicros: (cpu.user + cpu.system) / records.length, wallMicros: wall / records.length };
}

async function appendPath(): Promise<void> {
  const records = Array.from({ length: N }, (_, i) =>
    sampleRecord({
      instanceId: 'bench',
      sessionId: `s${i % 8}`,
      seq: i,
      verdict: i % 5 === 0 ? 'rewrite' : 'allow',
    }),
  );
  const variants: [string, AuditConfigInput][] = [
    ['log off', { ndjson: 'off', durable: false }],
    ['NDJSON file only', { ndjson: 'file', durable: false }],
    ['durable spool', { ndjson: 'off' }],
    ['durable spool + NDJSON file', { ndjson: 'file' }],
  ];
  const best = new Map<string, Cost>();
  for (let round = 0; round < 3; round++) {
    for (const [name, cfg] of variants) {
      const c = await appendRun(cfg, records);
      const b = best.get(name);
      best.set(name, {
        cpuMicros: Math.min(b?.cpuMicros ?? Infinity, c.cpuMicros),
        wallMicros: Math.min(b?.wallMicros ?? Infinity, c.wallMicros),
      });
    }
  }
  console.log(`append path, ${N} statements (decide + complete), best of 3:`);
  for (const [name] of variants) {
    const c = best.get(name) as Cost;
    console.log(
      `  ${name.padEnd(30)} ${c.cpuMicros.toFixed(2).padStart(6)} us CPU  ${c.wallMicros.toFixed(2).padStart(6)} us wall`,
    );
  }
  const durable = best.get('durable spool') as Cost;
  console.log(
    `  at 30,000 statements/s the durable path takes ${((durable.cpuMicros * 30_000) / 1e4).toFixed(1)}% of one core`,
  );
}

function batches(count: number, size: number): Lines[] {
  const chain = new Chain({ seq: 0, hash: GENESIS }, undefined);
  const out: Lines[] = [];
  const line = (type: 'decision' | 'outcome', time: string, body: string): string => {
    const l = chain.peek(body);
    chain.commit(l);
    return entryLine(type, 'bench', time, false, l, body).slice(0, -1);
  };
  for (let b = 0; b < count; b++) {
    const lines: Lines = { decisions: [], outcomes: [], ordered: [], last: null };
    for (let i = 0; i < size; i++) {
      const r = sampleRecord({ instanceId: 'bench', sessionId: `s${i % 8}`, seq: b * size + i });
      lines.decisions.push(line('decision', r.time, recordBody(r, true)));
      lines.outcomes.push(line('outcome', r.time, outcomeBody(sampleOutcome(r))));
    }
    lines.last = lines.outcomes[lines.outcomes.length - 1] ?? null;
    out.push(lines);
  }
  return out;
}

/** CPU time of one server backend from /proc (Linux), in µs; undefined elsewhere. */
function backendCpuMicros(pid: number | undefined): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime, in clock ticks of 10 ms (USER_HZ is 100 on Linux).
    return (Number(f[11]) + Number(f[12])) * 10_000;
  } catch {
    return undefined;
  }
}

async function storePath(): Promise<void> {
  const server = await startEmbeddedPostgres();
  try {
    console.log('store delivery, batches of 1000 statements (decision + outcome), one connection:');
    for (const sqlTextIndex of [true, false]) {
      const db = `pgwarden_audit_${sqlTextIndex ? 'trgm' : 'plain'}`;
      await ensureDatabase(server.url, db);
      const pool = new pg.Pool({ connectionString: server.url.replace(/\/postgres$/, `/${db}`), max: 1 });
      pool.on('error', () => {});
      await ensureSchema(pool, { sqlTextIndex });
      const data = batches(40, 1000);
      const nothing = {
        connect: async () => ({
          // A COPY (a pg Submittable) is answered as if the server had taken it.
          query: async (q: { submit?: unknown; handleReadyForQuery?: () => void }) => {
            if (typeof q.submit === 'function') q.handleReadyForQuery?.();
            return { rows: [] };
          },
          release: () => {},
        }),
      } as unknown as pg.Pool;
      let t = process.hrtime.bigint();
      for (const b of data) await deliver(nothing, b);
      const shipperMicros = Number(process.hrtime.bigint() - t) / 1000 / 40_000;
      const backend = (await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      const serverCpu0 = backendCpuMicros(backend);
      t = process.hrtime.bigint();
      for (const b of data) await deliver(pool, b);
      const totalMicros = Number(process.hrtime.bigint() - t) / 1000 / 40_000;
      const serverCpu1 = backendCpuMicros(backend);
      const serverCpu =
        serverCpu0 === undefined || serverCpu1 === undefined
          ? ''
          : `, ${((serverCpu1 - serverCpu0) / 40_000).toFixed(1)} us of it server CPU`;
      console.log(
        `  trigram index ${sqlTextIndex ? 'on ' : 'off'}  ${Math.round(1e6 / totalMicros)
          .toLocaleString('en')
          .padStart(7)} statements/s` +
          `  (${shipperMicros.toFixed(1)} us shipper thread + ${(totalMicros - shipperMicros).toFixed(1)} us store per statement${serverCpu})`,
      );
      await pool.end();
    }
  } finally {
    await server.destroy();
  }
}

await appendPath();
if (values.store) await storePath();
