import { run } from './processes.js';

/** Where pgbench connects; `password` goes through PGPASSWORD, never the command line. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
  /** The proxy's process, whose CPU the report accounts for (none for the server itself). */
  readonly pid?: number;
}

export const modes = ['simple', 'extended', 'prepared'] as const;
export type Mode = (typeof modes)[number];

const PGBENCH = process.env.PGBENCH ?? 'pgbench';

/**
 * libpq's environment for one endpoint. sslmode=disable for every target alike: none of them has
 * TLS set up here, and an SSLRequest answered with 'N' would only add a round trip per connection.
 */
export function libpqEnv(e: Endpoint): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PGHOST: e.host,
    PGPORT: String(e.port),
    PGDATABASE: e.database,
    PGUSER: e.user,
    PGPASSWORD: e.password,
    PGSSLMODE: 'disable',
    PGGSSENCMODE: 'disable',
    PGAPPNAME: 'pgwarden-bench',
  };
}

export interface PgbenchResult {
  readonly tps: number;
  readonly transactions: number;
  readonly failed: number;
  readonly latencyMs: number | undefined;
  /** The scale pgbench derived from `select count(*) from pgbench_branches`, as the target answered it. */
  readonly scale: number | undefined;
}

/** Reads the figures out of pgbench's summary (format of pgbench 13 to 18). */
export function parsePgbenchOutput(out: string): PgbenchResult {
  // "tps = 41234.567890 (without initial connection time)"; older versions print "excluding".
  const tps =
    /^tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/m.exec(out);
  const tx = /^number of transactions actually processed: (\d+)/m.exec(out);
  if (!tps?.[1] || !tx?.[1]) throw new Error(`cannot find tps in pgbench output:\n${out}`);
  const failed = /^number of failed transactions: (\d+)/m.exec(out);
  const latency = /^latency average = ([\d.]+) ms/m.exec(out);
  const scale = /^scaling factor: (\d+)/m.exec(out);
  return {
    tps: Number(tps[1]),
    transactions: Number(tx[1]),
    failed: failed?.[1] ? Number(failed[1]) : 0,
    latencyMs: latency?.[1] ? Number(latency[1]) : undefined,
    scale: scale?.[1] ? Number(scale[1]) : undefined,
  };
}

export interface PgbenchRun {
  readonly mode: Mode;
  readonly clients: number;
  readonly threads: number;
  readonly seconds: number;
}

/**
 * `pgbench -n -S`: the built-in select-only script, one indexed point read of pgbench_accounts per
 * transaction, so the cost of the path between client and server dominates.
 * -n: no VACUUM before the run (pgwarden would rightly refuse it). pgbench 15 rejects -P 0, so
 * progress reports are simply not asked for.
 */
export async function runPgbench(target: Endpoint, r: PgbenchRun): Promise<PgbenchResult> {
  const args = [
    '-n',
    '-S',
    '-M',
    r.mode,
    '-c',
    String(r.clients),
    '-j',
    String(r.threads),
    '-T',
    String(r.seconds),
  ];
  const out = await run(PGBENCH, args, { env: libpqEnv(target) });
  const result = parsePgbenchOutput(out);
  if (result.transactions === 0 || result.failed > 0)
    throw new Error(
      `pgbench ${args.join(' ')}: ${result.failed} failed, ${result.transactions} done:\n${out}`,
    );
  return result;
}
