import type pg from 'pg';
import type { Lines } from './spool-reader.js';

/*
 * The store parses the spool lines itself (line::jsonb), so the shipper passes text arrays and
 * never JSON-parses or re-serialises a record. The hashed body is cut out of the line exactly as
 * canonical.ts writes it: everything between `"record":` (or `"outcome":`) and the closing brace.
 */
const INSERT_DECISIONS = `
INSERT INTO pgwarden_decisions (id, instance_id, chain_seq, prev_hash, hash, mac, body, time, kind,
  session_id, seq, human, agent, tenant, verdict, rule_ids, tables, flags, sql, fingerprint)
SELECT r->>'id', j->>'instance', (j->>'chainSeq')::bigint, j->>'prev', j->>'hash', j->>'mac',
  substr(line, p + 9, length(line) - p - 9), (r->>'time')::timestamptz, r->>'kind',
  r->>'sessionId', (r->>'seq')::integer, r->>'human', r->>'agent', r->>'tenant', r->>'verdict',
  ARRAY(SELECT jsonb_array_elements_text(r->'ruleIds')),
  ARRAY(SELECT jsonb_array_elements_text(r->'tables')),
  ARRAY(SELECT jsonb_array_elements_text(r->'flags')),
  r->>'sql', r->>'fingerprint'
FROM (SELECT line, j, j->'record' AS r, strpos(line, '"record":') AS p
      FROM unnest($1::text[]) AS u(line), LATERAL (SELECT line::jsonb AS j) x) l
ON CONFLICT (id) DO NOTHING`;

// Re-delivering the same outcome writes the same values, so this is idempotent as it stands.
const UPDATE_OUTCOMES = `
UPDATE pgwarden_decisions d SET outcome_chain_seq = (o.j->>'chainSeq')::bigint,
  outcome_prev_hash = o.j->>'prev', outcome_hash = o.j->>'hash', outcome_mac = o.j->>'mac',
  outcome_body = substr(o.line, o.p + 10, length(o.line) - o.p - 10),
  command = o.j->'outcome'->>'command', rows = (o.j->'outcome'->>'rows')::bigint,
  upstream_micros = (o.j->'outcome'->>'upstreamMicros')::bigint, sqlstate = o.j->'outcome'->>'sqlstate'
FROM (SELECT line, line::jsonb AS j, strpos(line, '"outcome":') AS p FROM unnest($1::text[]) AS u(line)) o
WHERE d.id = o.j->'outcome'->>'recordId'`;

const UPSERT_HEAD = `
INSERT INTO pgwarden_chain_heads (instance_id, chain_seq, hash) VALUES ($1, $2, $3)
ON CONFLICT (instance_id) DO UPDATE SET chain_seq = excluded.chain_seq, hash = excluded.hash, updated_at = now()
WHERE pgwarden_chain_heads.chain_seq < excluded.chain_seq`;

/**
 * Delivers a batch in one transaction. Decisions are keyed by record id and inserted with
 * ON CONFLICT DO NOTHING, so a batch delivered twice (crash between commit and cursor write)
 * still leaves each record exactly once.
 */
export async function deliver(pool: pg.Pool, lines: Lines): Promise<void> {
  if (lines.last === null) return;
  const head = JSON.parse(lines.last) as { instance: string; chainSeq: number; hash: string };
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    if (lines.decisions.length > 0) await c.query(INSERT_DECISIONS, [lines.decisions]);
    if (lines.outcomes.length > 0) await c.query(UPDATE_OUTCOMES, [lines.outcomes]);
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
