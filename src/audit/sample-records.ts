import { randomUUID } from 'node:crypto';
import type { DecisionRecord, Outcome } from './record.js';

/**
 * Realistic records without a proxy: used by the benchmark (bench/audit-append.ts), the decision
 * log's tests and anyone who wants a populated store to look at.
 */
export function sampleRecord(
  over: Partial<DecisionRecord> & { sessionId: string; seq: number; instanceId: string },
): DecisionRecord {
  const verdict = over.verdict ?? 'allow';
  return {
    id: randomUUID(),
    time: new Date().toISOString(),
    kind: 'statement',
    human: 'alice@acme.test',
    agent: 'support-bot',
    tenant: 'acme',
    roles: ['support'],
    tokenId: 'jti-1',
    clientAddress: '127.0.0.1:50000',
    applicationName: 'psql',
    protocol: { mode: 'simple' },
    sql: 'SELECT id, total FROM orders WHERE id = 42',
    rewrittenSql:
      verdict === 'rewrite'
        ? `SELECT id, total FROM public.orders WHERE orders.org_id OPERATOR(pg_catalog.=) 'acme' AND id = 42`
        : null,
    fingerprint: 'a1b2c3d4e5f60718',
    verdict,
    reasons: verdict === 'deny' ? ['table_not_listed'] : verdict === 'rewrite' ? ['tenant_filter_added'] : [],
    ruleIds: ['tables.public.orders'],
    tables: ['public.orders'],
    columns: ['public.orders.id', 'public.orders.total'],
    flags: [],
    error: verdict === 'deny' ? { code: 'PGW_POLICY_DENIED', sqlstate: '42501', message: 'denied' } : null,
    detail: null,
    parameters: null,
    judgeMicros: 12,
    ...over,
  };
}

export function sampleOutcome(r: DecisionRecord, over: Partial<Outcome> = {}): Outcome {
  return {
    recordId: r.id,
    sessionId: r.sessionId,
    time: new Date().toISOString(),
    command: 'SELECT 1',
    rows: 1,
    upstreamMicros: 250,
    sqlstate: null,
    errorMessage: null,
    ...over,
  };
}
