import pg from 'pg';

/**
 * The audit store's tables. One row per decision; the outcome (rows, command tag, upstream error)
 * is filled in when it arrives. Each row keeps the exact hashed body text of its decision and of
 * its outcome, so `verify` recomputes the chain from the store alone; the other columns are copies
 * for searching and `verify` checks they still match the bodies.
 */
const DDL = `
CREATE TABLE IF NOT EXISTS pgwarden_decisions (
  id text PRIMARY KEY,
  instance_id text NOT NULL,
  chain_seq bigint NOT NULL,
  prev_hash text NOT NULL,
  hash text NOT NULL,
  mac text,
  body text NOT NULL,
  time timestamptz NOT NULL,
  kind text NOT NULL,
  session_id text NOT NULL,
  seq integer NOT NULL,
  human text,
  agent text,
  tenant text,
  verdict text,
  rule_ids text[] NOT NULL DEFAULT '{}',
  tables text[] NOT NULL DEFAULT '{}',
  flags text[] NOT NULL DEFAULT '{}',
  sql text,
  fingerprint text,
  outcome_chain_seq bigint,
  outcome_prev_hash text,
  outcome_hash text,
  outcome_mac text,
  outcome_body text,
  command text,
  rows bigint,
  upstream_micros bigint,
  sqlstate text
);
-- Not unique on purpose: a chain restarted under an old instance id must not block delivery;
-- verify reports the repeated positions instead.
CREATE INDEX IF NOT EXISTS pgwarden_decisions_chain ON pgwarden_decisions (instance_id, chain_seq);
CREATE INDEX IF NOT EXISTS pgwarden_decisions_outcome_chain
  ON pgwarden_decisions (instance_id, outcome_chain_seq) WHERE outcome_chain_seq IS NOT NULL;
CREATE INDEX IF NOT EXISTS pgwarden_decisions_time ON pgwarden_decisions (time DESC, id DESC);
CREATE INDEX IF NOT EXISTS pgwarden_decisions_human ON pgwarden_decisions (human, time DESC);
CREATE INDEX IF NOT EXISTS pgwarden_decisions_agent ON pgwarden_decisions (agent, time DESC);
CREATE INDEX IF NOT EXISTS pgwarden_decisions_tenant ON pgwarden_decisions (tenant, time DESC);
CREATE INDEX IF NOT EXISTS pgwarden_decisions_verdict ON pgwarden_decisions (verdict, time DESC);
CREATE INDEX IF NOT EXISTS pgwarden_decisions_session ON pgwarden_decisions (session_id, seq);
CREATE INDEX IF NOT EXISTS pgwarden_decisions_rules ON pgwarden_decisions USING gin (rule_ids);
CREATE INDEX IF NOT EXISTS pgwarden_decisions_tables ON pgwarden_decisions USING gin (tables);
CREATE INDEX IF NOT EXISTS pgwarden_decisions_flags ON pgwarden_decisions USING gin (flags);
-- Where an instance's chain starts after retention deleted its oldest entries.
CREATE TABLE IF NOT EXISTS pgwarden_chain_anchors (
  instance_id text PRIMARY KEY,
  chain_seq bigint NOT NULL,
  prev_hash text NOT NULL
);
-- The last link delivered per instance, so deleting the newest entries is detected too.
CREATE TABLE IF NOT EXISTS pgwarden_chain_heads (
  instance_id text PRIMARY KEY,
  chain_seq bigint NOT NULL,
  hash text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
`;

/** SQL text search uses trigrams when the server has pg_trgm; without it, ILIKE scans. */
const TRGM = `CREATE INDEX IF NOT EXISTS pgwarden_decisions_sql_trgm ON pgwarden_decisions USING gin (sql gin_trgm_ops)`;

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Creates the audit database on the server of `adminUrl` if it is missing. */
export async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl });
  c.on('error', () => {});
  await c.connect();
  try {
    const r = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (r.rowCount === 0) {
      try {
        await c.query(`CREATE DATABASE ${quoteIdent(database)}`);
      } catch (err) {
        // Another instance created it between our check and our CREATE.
        if ((err as { code?: string }).code !== '42P04') throw err;
      }
    }
  } finally {
    await c.end();
  }
}

export async function ensureSchema(pool: pg.Pool): Promise<void> {
  const c = await pool.connect();
  try {
    // Serialises concurrent first starts of several instances on one store.
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock(7403341)');
    await c.query(DDL);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    c.release();
  }
  try {
    await pool.query('CREATE EXTENSION IF NOT EXISTS pg_trgm');
    await pool.query(TRGM);
  } catch {
    // Not available or not permitted: search still works, without the index.
  }
}
