import type pg from 'pg';
import { GENESIS, anchorMac, linkHash } from './chain.js';
import { expectedAnchorMac, LINKS, macAndColumns, type AnchorRow, type LinkRow } from './verify.js';

/** Links read per query while looking for where to cut. */
const PAGE = 5000;

/**
 * The first chain position at or after `from` that retention must keep, and the hash of the link
 * before it: the first decision whose body (the hashed one, not the searchable time column) is not
 * older than the cutoff, or the first link that does not verify (a gap, a broken hash, a wrong HMAC, a
 * column that differs from its body). Deciding by the time column let a store writer backdate any
 * rows, and pgwarden's own retention then deleted them and signed an anchor over the gap (red
 * team, round 25). What does not verify stays for `verify` to report.
 */
async function verifiedCut(
  db: pg.ClientBase,
  instance: string,
  from: number,
  prevHash: string,
  cutoff: Date,
  hmacKey: string | undefined,
): Promise<{ cut: number; prev: string }> {
  let expected = from;
  let prev = prevHash;
  while (true) {
    const { rows } = await db.query<LinkRow>(LINKS, [instance, expected, expected + PAGE]);
    // The end of the chain, or a gap of a page or more.
    if (rows.length === 0) return { cut: expected, prev };
    for (const row of rows) {
      const intact =
        Number(row.seq) === expected &&
        row.prev === prev &&
        linkHash(row.prev, row.body) === row.hash &&
        macAndColumns(row, hmacKey, instance) === null;
      if (!intact) return { cut: expected, prev };
      // Decisions set the cut, as their age is what retention keeps; an outcome follows its own.
      const time = Date.parse(String((JSON.parse(row.body) as { time?: unknown }).time));
      if (row.type === 'decision' && !(time < cutoff.getTime())) return { cut: expected, prev };
      prev = row.hash;
      expected++;
    }
  }
}

/**
 * Deletes decisions older than the cutoff while keeping every instance's chain verifiable: it cuts
 * each chain at a position C such that nothing at or after C is deleted, and records (C, prev hash
 * of C) as the chain's new anchor. C is found by walking the chain from its anchor and checking
 * each link as verify does (verifiedCut), by the time in its hashed body. A decision older than
 * the cutoff whose outcome link lies after C (a long statement) is kept until a later run.
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
      const anchor = (
        await c.query<AnchorRow>(
          'SELECT chain_seq, prev_hash, cutoff, mac FROM pgwarden_chain_anchors WHERE instance_id = $1',
          [inst.instance_id],
        )
      ).rows[0];
      // With a key, an anchor without its MAC, or with a wrong one, was moved by hand: walking on
      // from it would key a new anchor over what it hid (red team, round 26). verify reports it.
      if (
        anchor &&
        hmacKey !== undefined &&
        anchor.mac !== expectedAnchorMac(anchor, inst.instance_id, hmacKey)
      ) {
        await c.query('ROLLBACK');
        continue;
      }
      const from = anchor ? Number(anchor.chain_seq) : 1;
      const { cut, prev: anchorPrev } = await verifiedCut(
        c,
        inst.instance_id,
        from,
        anchor?.prev_hash ?? GENESIS,
        cutoff,
        hmacKey,
      );
      // Nothing to delete, or the chain is broken at its start: verify reports that.
      if (cut === from) {
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
      // The anchor only moves forward (with a key, only from an anchor whose MAC holds).
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
