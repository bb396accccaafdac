import type pg from 'pg';
import { GENESIS, linkHash, linkMac } from './chain.js';
import { facetsOf } from './facets.js';

export type ProblemKind = 'altered' | 'deleted' | 'reordered' | 'forged' | 'truncated';

export interface Problem {
  readonly kind: ProblemKind;
  /** Chain position where the chain first breaks. */
  readonly chainSeq: number;
  /** The decision the broken link belongs to (for `deleted`, the one found in the gap's place). */
  readonly recordId: string | null;
  readonly message: string;
}

export interface InstanceReport {
  readonly instance: string;
  readonly ok: boolean;
  /** Links checked. */
  readonly checked: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly problem: Problem | null;
}

interface LinkRow {
  seq: string;
  prev: string;
  hash: string;
  mac: string | null;
  body: string;
  type: 'decision' | 'outcome';
  id: string;
  time: Date;
  kind: string | null;
  session_id: string | null;
  rseq: number | null;
  human: string | null;
  agent: string | null;
  tenant: string | null;
  verdict: string | null;
  sql: string | null;
  facets: string[] | null;
  command: string | null;
  rows: string | null;
  upstream_micros: string | null;
  sqlstate: string | null;
}

// One page of links: positions [$2, $3) of one instance, from the three places a link can be.
const LINKS = `
SELECT chain_seq AS seq, prev_hash AS prev, hash, mac, body, 'decision' AS type, id, time, kind,
  session_id, seq AS rseq, human, agent, tenant, verdict, sql, facets,
  NULL AS command, NULL::text AS rows, NULL::text AS upstream_micros, NULL AS sqlstate
FROM pgwarden_decisions WHERE instance_id = $1 AND chain_seq >= $2 AND chain_seq < $3
UNION ALL
SELECT outcome_chain_seq, outcome_prev_hash, outcome_hash, outcome_mac, outcome_body, 'outcome', id,
  (outcome_body::jsonb->>'time')::timestamptz, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  command, rows::text, upstream_micros::text, sqlstate
FROM pgwarden_decisions WHERE instance_id = $1 AND outcome_chain_seq >= $2 AND outcome_chain_seq < $3
UNION ALL
SELECT chain_seq, prev_hash, hash, mac, body, 'outcome', record_id, time, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, command, rows::text, upstream_micros::text, sqlstate
FROM pgwarden_outcomes WHERE instance_id = $1 AND chain_seq >= $2 AND chain_seq < $3
ORDER BY 1`;

// Where the chain continues after a gap (or null at its end).
const NEXT = `
SELECT min(s) AS seq FROM (
  SELECT min(chain_seq) AS s FROM pgwarden_decisions WHERE instance_id = $1 AND chain_seq >= $2
  UNION ALL SELECT min(outcome_chain_seq) FROM pgwarden_decisions WHERE instance_id = $1 AND outcome_chain_seq >= $2
  UNION ALL SELECT min(chain_seq) FROM pgwarden_outcomes WHERE instance_id = $1 AND chain_seq >= $2) m`;

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
const sameSet = (a: readonly string[] | null, b: readonly string[]): boolean =>
  same([...new Set(a ?? [])].sort(), [...new Set(b)].sort());

/** The searchable columns must say what the hashed body says, or searches could be steered. */
function columnMismatch(row: LinkRow, body: Record<string, unknown>, instance: string): string | null {
  if (row.type === 'decision') {
    const checks: [string, unknown, unknown][] = [
      ['id', row.id, body.id],
      ['time', row.time.getTime(), Date.parse(String(body.time))],
      ['kind', row.kind, body.kind],
      ['session_id', row.session_id, body.sessionId],
      ['seq', row.rseq, body.seq],
      ['human', row.human, body.human],
      ['agent', row.agent, body.agent],
      ['tenant', row.tenant, body.tenant],
      ['verdict', row.verdict, body.verdict],
      ['sql', row.sql, body.sql],
    ];
    for (const [col, a, b] of checks) if (!same(a, b)) return col;
    if (!sameSet(row.facets, facetsOf(body, instance))) return 'facets';
    return null;
  }
  const checks: [string, unknown, unknown][] = [
    ['record_id', row.id, body.recordId],
    ['time', row.time.getTime(), Date.parse(String(body.time))],
    ['command', row.command, body.command],
    ['rows', row.rows === null ? null : Number(row.rows), body.rows],
    [
      'upstream_micros',
      row.upstream_micros === null ? null : Number(row.upstream_micros),
      body.upstreamMicros,
    ],
    ['sqlstate', row.sqlstate, body.sqlstate],
  ];
  for (const [col, a, b] of checks) if (!same(a, b)) return col;
  return null;
}

/**
 * Walks one instance's chain in the store from its anchor and reports the first break:
 * - altered: a body (or a searchable column) no longer matches its hash;
 * - deleted: chain positions are missing (also at the end, against the recorded head);
 * - reordered: a link is intact but does not follow the one before it;
 * - forged: hashes are consistent but the HMAC is wrong (the chain was recomputed).
 */
export async function verifyInstance(
  pool: pg.Pool,
  instance: string,
  hmacKey: string | undefined,
  pageSize = 5000,
): Promise<InstanceReport> {
  const anchor = await pool.query<{ chain_seq: string; prev_hash: string }>(
    'SELECT chain_seq, prev_hash FROM pgwarden_chain_anchors WHERE instance_id = $1',
    [instance],
  );
  const headQ = await pool.query<{ chain_seq: string; hash: string }>(
    'SELECT chain_seq, hash FROM pgwarden_chain_heads WHERE instance_id = $1',
    [instance],
  );
  const start = anchor.rows[0] ? Number(anchor.rows[0].chain_seq) : 1;
  let expected = start;
  let prevHash = anchor.rows[0]?.prev_hash ?? GENESIS;
  let checked = 0;
  const report = (problem: Problem | null): InstanceReport => ({
    instance,
    ok: problem === null,
    checked,
    firstSeq: start,
    lastSeq: expected - 1,
    problem,
  });
  const checkLink = (row: LinkRow): Problem | null => {
    const seq = Number(row.seq);
    const at = { chainSeq: seq, recordId: row.id };
    if (linkHash(row.prev, row.body) !== row.hash) {
      return {
        kind: 'altered',
        ...at,
        message: `the ${row.type} of record ${row.id} (chain seq ${seq}) does not match its hash`,
      };
    }
    if (seq > expected) {
      return {
        kind: 'deleted',
        chainSeq: expected,
        recordId: row.id,
        message: `chain seq ${expected}..${seq - 1} missing before the ${row.type} of record ${row.id}`,
      };
    }
    if (seq < expected)
      return { kind: 'reordered', ...at, message: `chain seq ${seq} appears twice (record ${row.id})` };
    if (row.prev !== prevHash) {
      return {
        kind: 'reordered',
        ...at,
        message: `the ${row.type} of record ${row.id} is intact but does not follow chain seq ${seq - 1}: moved, or a neighbour was replaced`,
      };
    }
    if (hmacKey !== undefined && row.mac !== linkMac(hmacKey, row.hash)) {
      return {
        kind: 'forged',
        ...at,
        message: `the HMAC of chain seq ${seq} (record ${row.id}) is wrong: the chain was recomputed without the key`,
      };
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(row.body) as Record<string, unknown>;
    } catch {
      return { kind: 'altered', ...at, message: 'body is not JSON' };
    }
    const col = columnMismatch(row, body, instance);
    if (col !== null) {
      return {
        kind: 'altered',
        ...at,
        message: `column ${col} of record ${row.id} differs from its hashed ${row.type}`,
      };
    }
    return null;
  };
  while (true) {
    let { rows } = await pool.query<LinkRow>(LINKS, [instance, expected, expected + pageSize]);
    if (rows.length === 0) {
      // A gap at least a page long, or the end of the chain.
      const next = (await pool.query<{ seq: string | null }>(NEXT, [instance, expected])).rows[0]?.seq;
      if (next === null || next === undefined) break;
      rows = (await pool.query<LinkRow>(LINKS, [instance, Number(next), Number(next) + pageSize])).rows;
    }
    for (const row of rows) {
      const problem = checkLink(row);
      if (problem) return report(problem);
      prevHash = row.hash;
      expected = Number(row.seq) + 1;
      checked++;
    }
  }
  const head = headQ.rows[0];
  if (head && Number(head.chain_seq) >= expected) {
    return report({
      kind: 'deleted',
      chainSeq: expected,
      recordId: null,
      message: `chain seq ${expected}..${head.chain_seq} missing at the end (the last delivered link was ${head.chain_seq})`,
    });
  }
  if (head && Number(head.chain_seq) === expected - 1 && head.hash !== prevHash) {
    return report({
      kind: 'altered',
      chainSeq: expected - 1,
      recordId: null,
      message: `the last link differs from the delivered head`,
    });
  }
  return report(null);
}

export async function listChainInstances(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ instance_id: string }>(
    `SELECT instance_id FROM pgwarden_chain_heads
     UNION SELECT DISTINCT instance_id FROM pgwarden_decisions
     UNION SELECT DISTINCT instance_id FROM pgwarden_outcomes ORDER BY 1`,
  );
  return rows.map((r) => r.instance_id);
}

export async function verifyAll(
  pool: pg.Pool,
  hmacKey: string | undefined,
  instance?: string,
): Promise<InstanceReport[]> {
  const instances = instance ? [instance] : await listChainInstances(pool);
  const out: InstanceReport[] = [];
  for (const i of instances) out.push(await verifyInstance(pool, i, hmacKey));
  return out;
}
