import type { CpuPerTransaction } from './cpu.js';
import type { Mode } from './targets.js';

export type TargetName = 'direct' | 'pgbouncer' | 'node-pipe' | 'pgwarden' | 'pgwarden-audit';

/** TPS of every round, per mode and target. */
export type Measurements = Map<Mode, Map<TargetName, number[]>>;

export function median(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

const tps = (x: number | undefined): string =>
  x === undefined ? '–' : Math.round(x).toLocaleString('en-US');
const ratio = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined || b === 0 ? '–' : `${(a / b).toFixed(2)}x`;

/** The ratios worth reading for each pair of targets that ran, numerator first. */
const ratioColumns: readonly [TargetName, TargetName][] = [
  ['pgwarden', 'pgbouncer'],
  ['pgwarden', 'node-pipe'],
  ['node-pipe', 'pgbouncer'],
  ['pgwarden', 'direct'],
  ['pgbouncer', 'direct'],
  ['pgwarden-audit', 'pgwarden'],
  ['pgwarden-audit', 'pgbouncer'],
];

/** The Markdown table: TPS per target (median of the rounds), then the ratios between them. */
export function markdownTable(
  modes: readonly Mode[],
  targets: readonly TargetName[],
  m: Measurements,
  labels: Partial<Record<TargetName, string>> = {},
): string {
  const ratios = ratioColumns.filter(([a, b]) => targets.includes(a) && targets.includes(b));
  const head = ['mode', ...targets.map((t) => labels[t] ?? t), ...ratios.map(([a, b]) => `${a}/${b}`)];
  const rows = modes.map((mode) => {
    const cell = (t: TargetName): number | undefined => median(m.get(mode)?.get(t) ?? []);
    return [mode, ...targets.map((t) => tps(cell(t))), ...ratios.map(([a, b]) => ratio(cell(a), cell(b)))];
  });
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map((r) => line(r))].join(
    '\n',
  );
}

/**
 * CPU microseconds per transaction, by who spent them (median of the rounds, by machine total):
 * on a machine where pgbench, the proxy and the server share the cores, TPS is bounded by the sum.
 */
export function cpuTable(
  modes: readonly Mode[],
  targets: readonly TargetName[],
  cpu: (mode: Mode, t: TargetName) => readonly CpuPerTransaction[],
  labels: Partial<Record<TargetName, string>> = {},
): string {
  const us = (x: number): string => x.toFixed(1);
  const rows: string[][] = [];
  for (const mode of modes)
    for (const t of targets) {
      const all = [...cpu(mode, t)].sort((a, b) => a.machine - b.machine);
      const c = all[Math.floor((all.length - 1) / 2)];
      if (c === undefined) continue;
      rows.push([
        mode,
        labels[t] ?? t,
        us(c.client),
        t === 'direct' ? '–' : us(c.proxy),
        t === 'direct' ? '–' : us(c.proxyUser),
        us(c.rest),
        us(c.machine),
      ]);
    }
  if (rows.length === 0) return '';
  const head = [
    'mode',
    'target',
    'pgbench µs/txn',
    'proxy µs/txn',
    'of which user mode',
    'server + kernel µs/txn',
    'machine µs/txn',
  ];
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [
    'CPU per transaction (from /proc):',
    '',
    line(head),
    line(head.map((_, i) => (i < 2 ? '---' : '---:'))),
    ...rows.map((r) => line(r)),
  ].join('\n');
}
