import type { DecisionView } from '../audit/store-reader.js';

export const CSV_COLUMNS = [
  'time',
  'id',
  'instance',
  'session_id',
  'seq',
  'kind',
  'human',
  'agent',
  'tenant',
  'verdict',
  'rule_ids',
  'reasons',
  'tables',
  'flags',
  'sql',
  'rewritten_sql',
  'command',
  'rows',
  'upstream_micros',
  'sqlstate',
  'judge_micros',
] as const;

/**
 * RFC 4180 quoting. A cell that a spreadsheet would run as a formula (=, +, -, @, tab, CR at the
 * start) gets a leading apostrophe: exports are opened by people, and SQL is attacker-written.
 * Cells holding `;` or a tab are quoted too: where the list separator is `;` (most of Europe), or
 * an import splits at tabs, an unquoted `SELECT 1;=1+1` is split there and its second half runs
 * as a formula (the tab: red team, round 25).
 */
export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  let s = Array.isArray(v) ? v.join(';') : String(v);
  // Leading whitespace too (any an import's trim removes): the formula would start after it.
  if (/^\s*[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",;\t\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvRow(d: DecisionView): string {
  const o = d.outcome ?? {};
  const cells: unknown[] = [
    d.time,
    d.id,
    d.chain.instance,
    d.sessionId,
    d.seq,
    d.kind,
    d.human,
    d.agent,
    d.tenant,
    d.verdict,
    d.ruleIds,
    d.reasons,
    d.tables,
    d.flags,
    d.sql,
    d.rewrittenSql,
    o.command,
    o.rows,
    o.upstreamMicros,
    o.sqlstate,
    d.judgeMicros,
  ];
  return cells.map(csvCell).join(',') + '\r\n';
}

export const csvHeader = CSV_COLUMNS.join(',') + '\r\n';
