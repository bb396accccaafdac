/**
 * Search facets of a decision: one text per value a responder filters on, prefixed by its kind.
 * The store indexes them with one GIN index; `verify` recomputes them from the hashed body, so
 * editing them to hide a record from searches is detected.
 */
export const FACET_PREFIX = {
  human: 'h:',
  agent: 'a:',
  tenant: 't:',
  verdict: 'v:',
  kind: 'k:',
  instance: 'i:',
  rule: 'r:',
  table: 'tb:',
  flag: 'f:',
} as const;

export type FacetKey = keyof typeof FACET_PREFIX;

export function facet(key: FacetKey, value: string): string {
  return FACET_PREFIX[key] + value;
}

/** The facets of a record body (schema v1), sorted; the SQL in store-writer.ts computes the same. */
export function facetsOf(body: Record<string, unknown>, instance: string): string[] {
  const out: string[] = [];
  const one = (key: FacetKey, v: unknown): void => {
    if (typeof v === 'string') out.push(facet(key, v));
  };
  one('human', body.human);
  one('agent', body.agent);
  one('tenant', body.tenant);
  one('verdict', body.verdict);
  one('kind', body.kind);
  one('instance', instance);
  for (const v of (body.ruleIds as unknown[] | undefined) ?? []) one('rule', v);
  for (const v of (body.tables as unknown[] | undefined) ?? []) one('table', v);
  for (const v of (body.flags as unknown[] | undefined) ?? []) one('flag', v);
  return [...new Set(out)].sort();
}
