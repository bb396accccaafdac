import type pg from 'pg';
import type { SpoolEntry } from './canonical.js';

const INSERT_DECISIONS = `
INSERT INTO pgwarden_decisions (id, instance_id, chain_seq, prev_hash, hash, mac, body, time, kind,
  session_id, seq, human, agent, tenant, verdict, rule_ids, tables, flags, sql, fingerprint)
SELECT id, instance_id, chain_seq, prev_hash, hash, mac, body, time, kind,
  session_id, seq, human, agent, tenant, verdict, rule_ids, tables, flags, sql, fingerprint
FROM jsonb_to_recordset($1::jsonb) AS x(id text, instance_id text, chain_seq bigint, prev_hash text,
  hash text, mac text, body text, time timestamptz, kind text, session_id text, seq integer,
  human text, agent text, tenant text, verdict text, rule_ids text[], tables text[], flags text[],
  sql text, fingerprint text)
ON CONFLICT (id) DO NOTHING`;

// Re-delivering the same outcome writes the same values, so this is idempotent as it stands.
const UPDATE_OUTCOMES = `
UPDATE pgwarden_decisions d SET outcome_chain_seq = o.chain_seq, outcome_prev_hash = o.prev_hash,
  outcome_hash = o.hash, outcome_mac = o.mac, outcome_body = o.body, command = o.command,
  rows = o.rows, upstream_micros = o.upstream_micros, sqlstate = o.sqlstate
FROM jsonb_to_recordset($1::jsonb) AS o(record_id text, chain_seq bigint, prev_hash text, hash text,
  mac text, body text, command text, rows bigint, upstream_micros bigint, sqlstate text)
WHERE d.id = o.record_id`;

const UPSERT_HEADS = `
INSERT INTO pgwarden_chain_heads (instance_id, chain_seq, hash)
SELECT instance_id, chain_seq, hash FROM jsonb_to_recordset($1::jsonb) AS h(instance_id text, chain_seq bigint, hash text)
ON CONFLICT (instance_id) DO UPDATE SET chain_seq = excluded.chain_seq, hash = excluded.hash, updated_at = now()
WHERE pgwarden_chain_heads.chain_seq < excluded.chain_seq`;

type Value = Record<string, unknown>;

function decisionRow(e: SpoolEntry): Value {
  const r = e.value;
  return {
    id: r.id,
    instance_id: e.instance,
    chain_seq: e.seq,
    prev_hash: e.prev,
    hash: e.hash,
    mac: e.mac,
    body: e.body,
    time: r.time,
    kind: r.kind,
    session_id: r.sessionId,
    seq: r.seq,
    human: r.human,
    agent: r.agent,
    tenant: r.tenant,
    verdict: r.verdict,
    rule_ids: r.ruleIds,
    tables: r.tables,
    flags: r.flags,
    sql: r.sql,
    fingerprint: r.fingerprint,
  };
}

function outcomeRow(e: SpoolEntry): Value {
  const o = e.value;
  return {
    record_id: o.recordId,
    chain_seq: e.seq,
    prev_hash: e.prev,
    hash: e.hash,
    mac: e.mac,
    body: e.body,
    command: o.command,
    rows: o.rows,
    upstream_micros: o.upstreamMicros,
    sqlstate: o.sqlstate,
  };
}

/**
 * Delivers a batch in one transaction. Decisions are keyed by record id and inserted with
 * ON CONFLICT DO NOTHING, so a batch delivered twice (crash between commit and cursor write)
 * still leaves each record exactly once.
 */
export async function deliver(pool: pg.Pool, entries: readonly SpoolEntry[]): Promise<void> {
  const decisions: Value[] = [];
  const outcomes: Value[] = [];
  const heads = new Map<string, { instance_id: string; chain_seq: number; hash: string }>();
  for (const e of entries) {
    (e.type === 'decision' ? decisions : outcomes).push(
      e.type === 'decision' ? decisionRow(e) : outcomeRow(e),
    );
    const h = heads.get(e.instance);
    if (!h || h.chain_seq < e.seq)
      heads.set(e.instance, { instance_id: e.instance, chain_seq: e.seq, hash: e.hash });
  }
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    if (decisions.length > 0) await c.query(INSERT_DECISIONS, [JSON.stringify(decisions)]);
    if (outcomes.length > 0) await c.query(UPDATE_OUTCOMES, [JSON.stringify(outcomes)]);
    await c.query(UPSERT_HEADS, [JSON.stringify([...heads.values()])]);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    // A connection that failed mid-transaction is not reused.
    c.release(err as Error);
    throw err;
  }
  c.release();
}
