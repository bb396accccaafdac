import { parseArgs } from 'node:util';
import { openOrExplain, openSource, sourceArgs, sourceOptions } from '../audit/cli-source.js';
import { FILTER_KEYS, type DecisionFilter } from '../audit/filter.js';
import { AGGREGATE_BY, type AggregateBy, type DecisionView, type Interval } from '../audit/store-reader.js';
import { printable } from './printable.js';
import { safeJson } from '../audit/json-text.js';

interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const usage = `usage: pgwarden log [source] [filters] [--json] [--limit n] [--cursor c]
       pgwarden log [source] --replay <session-id> [--json]
       pgwarden log [source] --aggregate verdict|human|agent|tenant|rule|table|flag|kind|time [--interval hour] [filters]

source:  --config pgwarden.yaml | --database-url <dsn> | --api-url <url> (--token t | --token-file f | PGWARDEN_API_TOKEN)
filters: --human --agent --tenant --verdict allow|rewrite|deny --kind --rule --table --session --flag
         --instance --sqlstate --from <iso time> --to <iso time> --q <sql text>
`;

/** A cell of at most `n` characters, control characters escaped first (a newline shows as `\n`). */
function cut(s: unknown, n: number): string {
  const t = printable(String(s ?? '')).replace(/ {2,}/g, ' ');
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
}

/** Every cell goes through printable(): agent-written text never reaches the terminal raw. */
function table(cells: string[][]): string {
  const rows = cells.map((r) => r.map(printable));
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '))
    .join('\n');
}

function decisionRows(items: DecisionView[], replay: boolean): string[][] {
  const head = replay
    ? ['SEQ', 'TIME', 'KIND', 'VERDICT', 'RULE', 'ROWS', 'UPSTREAM', 'SQL']
    : ['TIME', 'HUMAN', 'AGENT', 'TENANT', 'VERDICT', 'RULE', 'ROWS', 'SESSION', 'SQL'];
  const rows = items.map((d) => {
    const o = d.outcome;
    const rowsCell = o ? (o.sqlstate ? `ERR ${String(o.sqlstate)}` : String(o.rows ?? '')) : '';
    const sql = cut(
      d.verdict === 'rewrite' ? `${String(d.sql)}  =>  ${String(d.rewrittenSql)}` : (d.sql ?? ''),
      100,
    );
    const rule = cut((d.ruleIds as string[] | undefined)?.join(',') ?? '', 32);
    return replay
      ? [
          String(d.seq),
          String(d.time),
          String(d.kind),
          String(d.verdict ?? '-'),
          rule,
          rowsCell,
          o ? `${String(o.upstreamMicros)}us` : '',
          sql,
        ]
      : [
          String(d.time),
          cut(d.human, 28),
          cut(d.agent, 20),
          cut(d.tenant, 16),
          String(d.verdict ?? '-'),
          rule,
          rowsCell,
          cut(d.sessionId, 12),
          sql,
        ];
  });
  return [head, ...rows];
}

/** `pgwarden log`: the API's searches from a terminal, as a table or NDJSON (--json). */
export async function logCommand(args: string[], io: Io): Promise<number> {
  let values: Record<string, unknown>;
  try {
    values = parseArgs({
      args,
      options: {
        ...sourceArgs,
        ...Object.fromEntries(FILTER_KEYS.map((k) => [k, { type: 'string' } as const])),
        sql: { type: 'string' },
        limit: { type: 'string' },
        cursor: { type: 'string' },
        json: { type: 'boolean' },
        replay: { type: 'string' },
        aggregate: { type: 'string' },
        interval: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    io.stderr(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  if (values.help) {
    io.stdout(usage);
    return 0;
  }
  const filter: Record<string, string> = {};
  for (const k of FILTER_KEYS) if (typeof values[k] === 'string') filter[k] = values[k];
  if (typeof values.sql === 'string') filter.q = values.sql;
  if (filter.verdict && !['allow', 'rewrite', 'deny'].includes(filter.verdict)) {
    io.stderr(`--verdict must be allow, rewrite or deny\n${usage}`);
    return 2;
  }
  const limit = values.limit === undefined ? 50 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    io.stderr('--limit must be an integer from 1 to 1000');
    return 2;
  }
  const interval = (values.interval ?? 'hour') as Interval;
  if (!['minute', 'hour', 'day'].includes(interval)) {
    io.stderr('--interval must be minute, hour or day');
    return 2;
  }
  const by = values.aggregate as string | undefined;
  if (by !== undefined && by !== 'time' && !AGGREGATE_BY.includes(by as AggregateBy)) {
    io.stderr(`--aggregate must be one of ${[...AGGREGATE_BY, 'time'].join(', ')}`);
    return 2;
  }

  const source = openOrExplain(() => openSource(sourceOptions(values)), usage, io.stderr);
  if (!source) return 2;
  try {
    const json = values.json === true;
    if (by !== undefined) {
      const buckets = await source.aggregate(by as AggregateBy | 'time', filter as DecisionFilter, interval);
      if (json) for (const b of buckets) io.stdout(safeJson(b));
      else {
        const rows = (buckets as Record<string, unknown>[]).map((b) =>
          Object.values(b).map((v) => String(v ?? '(none)')),
        );
        const head = Object.keys(
          (buckets[0] as Record<string, unknown> | undefined) ?? { key: 0, count: 0 },
        ).map((k) => k.toUpperCase());
        io.stdout(table([head, ...rows]));
      }
      return 0;
    }
    if (typeof values.replay === 'string') {
      const items = await source.session(values.replay);
      if (items.length === 0) {
        io.stderr(`no session ${printable(values.replay)}`);
        return 1;
      }
      if (json) for (const d of items) io.stdout(safeJson(d));
      else {
        const first = items[0] as DecisionView;
        io.stdout(
          printable(
            `session ${values.replay}: ${String(first.human)} via ${String(first.agent)} in ${String(first.tenant)}`,
          ),
        );
        io.stdout(table(decisionRows(items, true)));
      }
      return 0;
    }
    const page = await source.search(filter as DecisionFilter, limit, values.cursor as string | undefined);
    if (json) for (const d of page.items) io.stdout(safeJson(d));
    else io.stdout(page.items.length === 0 ? '(no decisions)' : table(decisionRows(page.items, false)));
    if (page.nextCursor) io.stderr(`more: --cursor ${printable(page.nextCursor)}`);
    return 0;
  } finally {
    await source.close();
  }
}
