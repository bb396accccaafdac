import { facet, type FacetKey } from './facets.js';

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

/**
 * Parameterised WHERE clause over `pgwarden_decisions d LEFT JOIN pgwarden_outcomes o`; `params`
 * may already hold values, numbering continues after them. Value filters become one
 * `d.facets @> ARRAY[...]`, which the GIN index answers in one lookup.
 */
export function whereClause(f: DecisionFilter, params: unknown[]): string {
  const parts: string[] = [];
  const p = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  const facetKeys: FacetKey[] = [
    'human',
    'agent',
    'tenant',
    'verdict',
    'kind',
    'instance',
    'rule',
    'table',
    'flag',
  ];
  const wanted: string[] = [];
  for (const key of facetKeys) {
    const v = f[key];
    if (v !== undefined && v !== '') wanted.push(facet(key, v));
  }
  if (wanted.length > 0) parts.push(`d.facets @> ${p(wanted)}::text[]`);
  if (f.session) parts.push(`d.session_id = ${p(f.session)}`);
  if (f.sqlstate) parts.push(`coalesce(d.sqlstate, o.sqlstate) = ${p(f.sqlstate)}`);
  if (f.from) parts.push(`d.time >= ${p(f.from)}::timestamptz`);
  if (f.to) parts.push(`d.time < ${p(f.to)}::timestamptz`);
  if (f.q) parts.push(`d.sql ILIKE ${p(`%${likeEscape(f.q)}%`)}`);
  return parts.length === 0 ? 'TRUE' : parts.join(' AND ');
}
