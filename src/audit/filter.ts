/**
 * The search filter shared by the API, the CLI and exports. Every field narrows the result;
 * list-valued columns (rules, tables, flags) match when they contain the value.
 */
export interface DecisionFilter {
  readonly human?: string | undefined;
  readonly agent?: string | undefined;
  readonly tenant?: string | undefined;
  readonly verdict?: 'allow' | 'rewrite' | 'deny' | undefined;
  readonly kind?: string | undefined;
  readonly rule?: string | undefined;
  readonly table?: string | undefined;
  readonly session?: string | undefined;
  readonly flag?: string | undefined;
  readonly instance?: string | undefined;
  readonly sqlstate?: string | undefined;
  /** ISO time, inclusive. */
  readonly from?: string | undefined;
  /** ISO time, exclusive. */
  readonly to?: string | undefined;
  /** Substring of the original SQL, case-insensitive. */
  readonly q?: string | undefined;
}

export const FILTER_KEYS = [
  'human',
  'agent',
  'tenant',
  'verdict',
  'kind',
  'rule',
  'table',
  'session',
  'flag',
  'instance',
  'sqlstate',
  'from',
  'to',
  'q',
] as const;

function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** Parameterised WHERE clause; `params` may already hold values, numbering continues after them. */
export function whereClause(f: DecisionFilter, params: unknown[]): string {
  const parts: string[] = [];
  const p = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  const eq: [keyof DecisionFilter, string][] = [
    ['human', 'human'],
    ['agent', 'agent'],
    ['tenant', 'tenant'],
    ['verdict', 'verdict'],
    ['kind', 'kind'],
    ['session', 'session_id'],
    ['instance', 'instance_id'],
    ['sqlstate', 'sqlstate'],
  ];
  for (const [key, col] of eq) {
    const v = f[key];
    if (v !== undefined && v !== '') parts.push(`${col} = ${p(v)}`);
  }
  const contains: [keyof DecisionFilter, string][] = [
    ['rule', 'rule_ids'],
    ['table', 'tables'],
    ['flag', 'flags'],
  ];
  for (const [key, col] of contains) {
    const v = f[key];
    if (v !== undefined && v !== '') parts.push(`${col} @> ARRAY[${p(v)}::text]`);
  }
  if (f.from) parts.push(`time >= ${p(f.from)}::timestamptz`);
  if (f.to) parts.push(`time < ${p(f.to)}::timestamptz`);
  if (f.q) parts.push(`sql ILIKE ${p(`%${likeEscape(f.q)}%`)}`);
  return parts.length === 0 ? 'TRUE' : parts.join(' AND ');
}
