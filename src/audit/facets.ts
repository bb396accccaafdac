import { createHash } from 'node:crypto';
import { headOf } from './clip.js';

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

/**
 * Longest facet value kept verbatim. A GIN index entry must fit in about a third of a page
 * (2712 bytes): one longer value (an agent-chosen 7,000-character user name) made the store refuse
 * every batch with SQLSTATE 54000. 200 characters are at most 800 bytes in UTF-8.
 */
export const FACET_MAX_CHARS = 200;

/**
 * A longer value is cut to FACET_MAX_CHARS characters and followed by `#` and the first 32 hex
 * digits of the SHA-256 of the whole value: searching by the full value computes the same facet, and
 * the result (more than 200 characters) can never equal a value kept verbatim.
 */
export function facetValue(value: string): string {
  if (value.length <= FACET_MAX_CHARS) return value;
  const head = headOf(value, FACET_MAX_CHARS);
  const digest = createHash('sha256').update(value, 'utf8').digest('hex').slice(0, 32);
  return `${head}#${digest}`;
}

export function facet(key: FacetKey, value: string): string {
  return FACET_PREFIX[key] + facetValue(value);
}

/** The facets of a record body (schema v1), sorted; store-writer.ts and verify.ts both use this. */
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
