import { z } from 'zod';
import type { DecisionFilter } from '../audit/filter.js';

// NUL never occurs in stored text, and PostgreSQL refuses it in a query parameter.
const text = z
  .string()
  .min(1)
  .max(1000)
  .regex(/^[^\0]*$/, 'must not contain NUL');
const time = z.iso.datetime({ offset: true });

/** Query parameters every search-like endpoint accepts. Unknown parameters are errors. */
export const filterShape = {
  human: text.optional(),
  agent: text.optional(),
  tenant: text.optional(),
  verdict: z.enum(['allow', 'rewrite', 'deny']).optional(),
  kind: z.enum(['statement', 'session_start', 'session_end', 'auth_failure']).optional(),
  rule: text.optional(),
  table: text.optional(),
  session: text.optional(),
  flag: text.optional(),
  instance: text.optional(),
  sqlstate: z
    .string()
    .regex(/^[0-9A-Z]{5}$/)
    .optional(),
  from: time.optional(),
  to: time.optional(),
  q: text.optional(),
};

/** A page of a session: records after a sequence number. */
export const sessionQuery = z
  .object({
    after: z.coerce.number().int().min(-1).optional(),
    limit: z.coerce.number().int().min(1).max(1000).optional(),
  })
  .strict();

export const searchQuery = z
  .object({
    ...filterShape,
    limit: z.coerce.number().int().min(1).max(1000).optional(),
    cursor: z.string().max(500).optional(),
  })
  .strict();

export const aggregateQuery = z
  .object({
    ...filterShape,
    by: z
      .enum(['verdict', 'human', 'agent', 'tenant', 'rule', 'table', 'flag', 'kind', 'time'])
      .default('verdict'),
    interval: z.enum(['minute', 'hour', 'day']).default('hour'),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

export const exportQuery = z
  .object({
    ...filterShape,
    format: z.enum(['ndjson', 'csv']).default('ndjson'),
    limit: z.coerce.number().int().min(1).optional(),
  })
  .strict();

export const verifyQuery = z.object({ instance: text.optional() }).strict();

export function toFilter(q: Record<string, unknown>): DecisionFilter {
  const f: Record<string, unknown> = {};
  for (const k of Object.keys(filterShape)) if (q[k] !== undefined) f[k] = q[k];
  return f as DecisionFilter;
}
