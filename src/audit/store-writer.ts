import type pg from 'pg';
import type { Lines } from './spool-reader.js';

/*
 * The store parses the spool lines itself (line::jsonb), so the shipper never JSON-parses or
 * re-serialises a record. Lines go as one newline-joined text (a spool line never holds a raw
 * newline): measured 4-6x cheaper than a text[] parameter, whose every quote gets escaped. The hashed body is cut out of the line exactly as
 * canonical.ts writes it: everything between `"record":` (or `"outcome":`) and the closing brace.
 */
// MATERIALIZED: without it the planner inlines line::jsonb into every field reference and parses
// each line twenty times over (measured: 268 us per row instead of a few).
const INSERT_DECISIONS = `
WITH l AS MATERIALIZED (
  SELECT line, j, j->'record' AS r, strpos(line, '"record":') AS p
  FROM (SELECT line, line::jsonb AS j FROM unnest(string_to_array($1::text, E'\\n')) AS u(line)) x
)
INSERT INTO pgwarden_decisions (id, instance_id, chain_seq, prev_hash, hash, mac, body, time, kind,
  session_id, seq, human, agent, tenant, verdict, rule_ids, tables, flags, sql, fingerprint, facets)
SELECT r->>'id', j->>'instance', (j->>'chainSeq')::bigint, j->>'prev', j->>'hash', j->>'mac',
  substr(line, p + 9, length(line) - p - 9), (r->>'time')::timestamptz, r->>'kind',
  r->>'sessionId', (r->>'seq')::integer, r->>'human', r->>'agent', r->>'tenant', r->>'verdict',
  ARRAY(SELECT jsonb_array_elements_text(r->'ruleIds')),
  ARRAY(SELECT jsonb_array_elements_text(r->'tables')),
  ARRAY(SELECT jsonb_array_elements_text(r->'flags')),
  r->>'sql', r->>'fingerprint',
  -- The same facets as facets.ts computes (verify compares them).
  ARRAY(SELECT DISTINCT f FROM unnest(
    ARRAY['h:' || (r->>'human'), 'a:' || (r->>'agent'), 't:' || (r->>'tenant'), 'v:' || (r->>'verdict'),
          'k:' || (r->>'kind'), 'i:' || (j->>'instance')]
    || ARRAY(SELECT 'r:' || x FROM jsonb_array_elements_text(r->'ruleIds') x)
    || ARRAY(SELECT 'tb:' || x FROM jsonb_array_elements_text(r->'tables') x)
    || ARRAY(SELECT 'f:' || x FROM jsonb_array_elements_text(r->'flags') x)) f WHERE f IS NOT NULL)
FROM l
ON CONFLICT (id) DO NOTHING`;

const INSERT_OUTCOMES = `
WITH o AS MATERIALIZED (
  SELECT line, j, j->'outcome' AS v, strpos(line, '"outcome":') AS p
  FROM (SELECT line, line::jsonb AS j FROM unnest(string_to_array($1::text, E'\\n')) AS u(line)) x
)
INSERT INTO pgwarden_outcomes (record_id, instance_id, chain_seq, prev_hash, hash, mac, body, time,
  command, rows, upstream_micros, sqlstate)
SELECT v->>'recordId', j->>'instance', (j->>'chainSeq')::bigint, j->>'prev', j->>'hash', j->>'mac',
  substr(line, p + 10, length(line) - p - 10), (v->>'time')::timestamptz, v->>'command',
  (v->>'rows')::bigint, (v->>'upstreamMicros')::bigint, v->>'sqlstate'
FROM o
ON CONFLICT (record_id) DO NOTHING`;

const UPSERT_HEAD = `
INSERT INTO pgwarden_chain_heads (instance_id, chain_seq, hash) VALUES ($1, $2, $3)
ON CONFLICT (instance_id) DO UPDATE SET chain_seq = excluded.chain_seq, hash = excluded.hash, updated_at = now()
WHERE pgwarden_chain_heads.chain_seq < excluded.chain_seq`;

/**
 * Delivers a batch in one transaction. Decisions and outcomes are keyed by record id and inserted
 * with ON CONFLICT DO NOTHING, so a batch delivered twice (crash between commit and cursor write)
 * still leaves each record exactly once.
 */
export async function deliver(pool: pg.Pool, lines: Lines): Promise<void> {
  if (lines.last === null) return;
  const head = JSON.parse(lines.last) as { instance: string; chainSeq: number; hash: string };
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    if (lines.decisions.length > 0) await c.query(INSERT_DECISIONS, [lines.decisions.join('\n')]);
    if (lines.outcomes.length > 0) await c.query(INSERT_OUTCOMES, [lines.outcomes.join('\n')]);
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
