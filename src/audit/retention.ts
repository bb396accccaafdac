import type pg from 'pg';
import { anchorMac } from './chain.js';

/**
 * Deletes decisions older than the cutoff while keeping every instance's chain verifiable: it cuts
 * each chain at a position C such that nothing at or after C is deleted, and records (C, prev hash
 * of C) as the chain's new anchor. A decision older than the cutoff whose outcome link lies after C
 * (a long statement) is kept until a later run.
 * The anchor records the cutoff (verify compares it with the retention period) and, with an HMAC
 * key, its MAC (chain.ts anchorMac), so an anchor moved forward by hand is reported.
 */
export async function applyRetention(pool: pg.Pool, cutoff: Date, hmacKey?: string): Promise<number> {
  const { rows: instances } = await pool.query<{ instance_id: string; chain_seq: string; hash: string }>(
    'SELECT instance_id, chain_seq, hash FROM pgwarden_chain_heads',
  );
  let deleted = 0;
  for (const inst of instances) {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      const firstKept = await c.query<{ seq: string | null }>(
        'SELECT min(chain_seq) AS seq FROM pgwarden_decisions WHERE instance_id = $1 AND time >= $2',
        [inst.instance_id, cutoff],
      );
      // Nothing newer than the cutoff: the chain resumes after the delivered head.
      const cut = firstKept.rows[0]?.seq != null ? Number(firstKept.rows[0].seq) : Number(inst.chain_seq) + 1;
      const prev = await c.query<{ prev: string }>(
        `SELECT prev_hash AS prev FROM pgwarden_decisions WHERE instance_id = $1 AND chain_seq = $2
         UNION ALL
         SELECT outcome_prev_hash FROM pgwarden_decisions WHERE instance_id = $1 AND outcome_chain_seq = $2
         UNION ALL
         SELECT prev_hash FROM pgwarden_outcomes WHERE instance_id = $1 AND chain_seq = $2`,
        [inst.instance_id, cut],
      );
      const anchorPrev = prev.rows[0]?.prev ?? (cut === Number(inst.chain_seq) + 1 ? inst.hash : null);
      if (anchorPrev === null) {
        await c.query('ROLLBACK');
        continue;
      }
      // A decision goes with its outcome; one whose outcome lies at or after the cut stays whole.
      const del = await c.query<{ n: string }>(
        `WITH gone AS (
           DELETE FROM pgwarden_decisions d WHERE d.instance_id = $1 AND d.chain_seq < $2
             AND coalesce(d.outcome_chain_seq, 0) < $2
             AND NOT EXISTS (SELECT 1 FROM pgwarden_outcomes o WHERE o.record_id = d.id AND o.chain_seq >= $2)
           RETURNING d.id),
         outcomes AS (DELETE FROM pgwarden_outcomes o USING gone WHERE o.record_id = gone.id RETURNING 1)
         SELECT count(*) AS n FROM gone`,
        [inst.instance_id, cut],
      );
      // Outcomes below the cut whose decision is gone (their decision never reached the spool):
      // nothing legitimate is left below the anchor but decisions whose outcome lies after it.
      await c.query(
        `DELETE FROM pgwarden_outcomes o WHERE o.instance_id = $1 AND o.chain_seq < $2
           AND NOT EXISTS (SELECT 1 FROM pgwarden_decisions d WHERE d.id = o.record_id)`,
        [inst.instance_id, cut],
      );
      const at = cutoff.toISOString();
      const mac = hmacKey === undefined ? null : anchorMac(hmacKey, inst.instance_id, cut, anchorPrev, at);
      // The anchor only moves forward; at the same position it gains a MAC it lacked (written
      // before a key was configured, or before anchors carried one).
      await c.query(
        `INSERT INTO pgwarden_chain_anchors (instance_id, chain_seq, prev_hash, cutoff, mac)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (instance_id) DO UPDATE SET chain_seq = excluded.chain_seq,
           prev_hash = excluded.prev_hash, cutoff = excluded.cutoff, mac = excluded.mac
         WHERE pgwarden_chain_anchors.chain_seq < excluded.chain_seq
           OR (pgwarden_chain_anchors.chain_seq = excluded.chain_seq
               AND pgwarden_chain_anchors.mac IS NULL AND excluded.mac IS NOT NULL)`,
        [inst.instance_id, cut, anchorPrev, at, mac],
      );
      await c.query('COMMIT');
      deleted += Number(del.rows[0]?.n ?? 0);
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      c.release();
    }
  }
  return deleted;
}
