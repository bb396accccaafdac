import pg from 'pg';

/**
 * The audit store's tables. Each decision row also carries its outcome when both were delivered in
 * the same batch (nearly always: the outcome follows within milliseconds), so a statement costs
 * one row insert, never an UPDATE (which rewrites the row and every index entry). An outcome that
 * arrives in a later batch (a long statement) goes to pgwarden_outcomes, also insert-only.
 * Each row keeps the exact hashed body texts, so `verify` recomputes the chain from the store
 * alone; the other columns are copies for searching and `verify` checks they still match.
 *
 * Searches on human, agent, tenant, verdict, kind, instance, rules, tables and flags all go through
 * one GIN index over `facets` ("h:alice@acme.test", "v:deny", "r:tables.public.orders", ...): one
 * index to maintain per insert instead of eleven, and GIN's pending list makes it cheap. Chain
 * positions grow with insertion order, so BRIN indexes serve verify at almost no insert cost.
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
  sql text,
  facets text[] NOT NULL DEFAULT '{}',
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
CREATE TABLE IF NOT EXISTS pgwarden_outcomes (
  record_id text PRIMARY KEY,
  instance_id text NOT NULL,
  chain_seq bigint NOT NULL,
  prev_hash text NOT NULL,
  hash text NOT NULL,
  mac text,
  body text NOT NULL,
  time timestamptz NOT NULL,
  command text,
  rows bigint,
  upstream_micros bigint,
  sqlstate text
);
CREATE INDEX IF NOT EXISTS pgwarden_decisions_chain ON pgwarden_decisions
  USING brin (instance_id, chain_seq, outcome_chain_seq) WITH (autosummarize = on);
CREATE INDEX IF NOT EXISTS pgwarden_outcomes_chain ON pgwarden_outcomes
  USING brin (instance_id, chain_seq) WITH (autosummarize = on);
CREATE INDEX IF NOT EXISTS pgwarden_decisions_time ON pgwarden_decisions (time DESC, id DESC);
CREATE INDEX IF NOT EXISTS pgwarden_decisions_session ON pgwarden_decisions (session_id, seq);
CREATE INDEX IF NOT EXISTS pgwarden_decisions_facets ON pgwarden_decisions USING gin (facets);
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
-- Keyed like the links when audit.hmacKey is set (chain.ts headMac, anchorMac), so someone who can
-- write the store cannot move a head back over deleted newest entries, nor an anchor forward over
-- deleted oldest ones. Rows written before these columns existed have no MAC.
ALTER TABLE pgwarden_chain_heads ADD COLUMN IF NOT EXISTS mac text;
ALTER TABLE pgwarden_chain_anchors ADD COLUMN IF NOT EXISTS mac text;
-- The retention cutoff that moved the anchor: everything before it was older than this.
ALTER TABLE pgwarden_chain_anchors ADD COLUMN IF NOT EXISTS cutoff timestamptz;
-- Every instance whose chain the store has received, so a chain deleted whole (rows, outcomes,
-- head, anchor) is reported as missing rather than vanishing from the report.
CREATE TABLE IF NOT EXISTS pgwarden_instances (
  instance_id text PRIMARY KEY,
  first_seen timestamptz NOT NULL DEFAULT now(),
  mac text
);
-- Stores created before the registry: their instances are registered (without a MAC until their
-- next delivery).
INSERT INTO pgwarden_instances (instance_id) SELECT instance_id FROM pgwarden_chain_heads
ON CONFLICT (instance_id) DO NOTHING;
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

export async function ensureSchema(
  pool: pg.Pool,
  opts: { sqlTextIndex: boolean } = { sqlTextIndex: true },
): Promise<void> {
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
  if (!opts.sqlTextIndex) {
    await pool.query('DROP INDEX IF EXISTS pgwarden_decisions_sql_trgm');
    return;
  }
  try {
    await pool.query('CREATE EXTENSION IF NOT EXISTS pg_trgm');
    await pool.query(TRGM);
  } catch {
    // Not available or not permitted: search still works, without the index.
  }
}
