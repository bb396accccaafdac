import type pg from 'pg';
import { facetsOf } from './facets.js';
import type { Lines } from './spool-reader.js';

/*
 * One batch is one statement per table: rows go as a single JSON array through
 * jsonb_to_recordset. Measured against letting the store parse each spool line (line::jsonb and
 * per-row sub-selects for the arrays): about 35% less server time per row, and the parsing here
 * runs on the shipper's thread, not the proxy's. The hashed body is cut out of the line exactly
 * as canonical.ts writes it: everything between `"record":` (or `"outcome":`) and the last brace.
 */
const INSERT_DECISIONS = `
INSERT INTO pgwarden_decisions (id, instance_id, chain_seq, prev_hash, hash, mac, body, time, kind,
  session_id, seq, human, agent, tenant, verdict, sql, facets)
SELECT id, instance_id, chain_seq, prev_hash, hash, mac, body, time, kind,
  session_id, seq, human, agent, tenant, verdict, sql, facets
FROM jsonb_to_recordset($1::jsonb) AS x(id text, instance_id text, chain_seq bigint, prev_hash text,
  hash text, mac text, body text, time timestamptz, kind text, session_id text, seq integer,
  human text, agent text, tenant text, verdict text, sql text, facets text[])
ON CONFLICT (id) DO NOTHING`;

const INSERT_OUTCOMES = `
INSERT INTO pgwarden_outcomes (record_id, instance_id, chain_seq, prev_hash, hash, mac, body, time,
  command, rows, upstream_micros, sqlstate)
SELECT record_id, instance_id, chain_seq, prev_hash, hash, mac, body, time,
  command, rows, upstream_micros, sqlstate
FROM jsonb_to_recordset($1::jsonb) AS x(record_id text, instance_id text, chain_seq bigint,
  prev_hash text, hash text, mac text, body text, time timestamptz, command text, rows bigint,
  upstream_micros bigint, sqlstate text)
ON CONFLICT (record_id) DO NOTHING`;

const UPSERT_HEAD = `
INSERT INTO pgwarden_chain_heads (instance_id, chain_seq, hash) VALUES ($1, $2, $3)
ON CONFLICT (instance_id) DO UPDATE SET chain_seq = excluded.chain_seq, hash = excluded.hash, updated_at = now()
WHERE pgwarden_chain_heads.chain_seq < excluded.chain_seq`;

interface Header {
  instance: string;
  chainSeq: number;
  prev: string;
  hash: string;
  mac: string | null;
}

function bodyOf(line: string, key: string): string {
  // The header holds no free text, so the first occurrence of the key is the body's.
  return line.slice(line.indexOf(key) + key.length, line.length - 1);
}

function decisionRow(line: string): Record<string, unknown> {
  const v = JSON.parse(line) as Header & { record: Record<string, unknown> };
  const r = v.record;
  return {
    id: r.id,
    instance_id: v.instance,
    chain_seq: v.chainSeq,
    prev_hash: v.prev,
    hash: v.hash,
    mac: v.mac,
    body: bodyOf(line, '"record":'),
    time: r.time,
    kind: r.kind,
    session_id: r.sessionId,
    seq: r.seq,
    human: r.human,
    agent: r.agent,
    tenant: r.tenant,
    verdict: r.verdict,
    sql: r.sql,
    facets: facetsOf(r, v.instance),
  };
}

function outcomeRow(line: string): Record<string, unknown> {
  const v = JSON.parse(line) as Header & { outcome: Record<string, unknown> };
  const o = v.outcome;
  return {
    record_id: o.recordId,
    instance_id: v.instance,
    chain_seq: v.chainSeq,
    prev_hash: v.prev,
    hash: v.hash,
    mac: v.mac,
    body: bodyOf(line, '"outcome":'),
    time: o.time,
    command: o.command,
    rows: o.rows,
    upstream_micros: o.upstreamMicros,
    sqlstate: o.sqlstate,
  };
}

/**
 * Delivers a batch in one transaction. Decisions and outcomes are keyed by record id and inserted
 * with ON CONFLICT DO NOTHING, so a batch delivered twice (crash between commit and cursor write)
 * still leaves each record exactly once.
 */
export async function deliver(pool: pg.Pool, lines: Lines): Promise<void> {
  if (lines.last === null) return;
  const head = JSON.parse(lines.last) as Header;
  const decisions = lines.decisions.length > 0 ? JSON.stringify(lines.decisions.map(decisionRow)) : null;
  const outcomes = lines.outcomes.length > 0 ? JSON.stringify(lines.outcomes.map(outcomeRow)) : null;
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    if (decisions !== null) await c.query(INSERT_DECISIONS, [decisions]);
    if (outcomes !== null) await c.query(INSERT_OUTCOMES, [outcomes]);
    await c.query(UPSERT_HEAD, [head.instance, head.chainSeq, head.hash]);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    // A connection that failed mid-transaction is not reused.
    c.release(err as Error);
    throw err;
  }
  c.release();
}
