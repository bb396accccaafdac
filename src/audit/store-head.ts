import pg from 'pg';
import type { Logger } from 'pino';
import { headMac } from './chain.js';

/** How long a start with an empty spool waits for the store to say where the chain stands. */
const STORE_HEAD_TIMEOUT_MS = 2000;

/**
 * Where this instance's chain stands in the store, for a start whose spool holds nothing of it (a
 * spool directory removed, or lost with a container): the chain goes on from there. Starting at 1
 * again put a second chain under the same instance id, and verify reported it as reordered from
 * then on, hiding whatever came after (red team, round 41). Undefined when the store is out of
 * reach, has no head for the instance, or has one whose MAC does not verify.
 */
export async function storeHead(
  url: string,
  instance: string,
  hmacKey: string | undefined,
  log: Logger,
): Promise<{ seq: number; hash: string } | undefined> {
  const c = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: STORE_HEAD_TIMEOUT_MS,
    statement_timeout: STORE_HEAD_TIMEOUT_MS,
  });
  c.on('error', () => {});
  try {
    await c.connect();
    const { rows } = await c.query<{ chain_seq: string; hash: string; mac: string | null }>(
      'SELECT chain_seq, hash, mac FROM pgwarden_chain_heads WHERE instance_id = $1',
      [instance],
    );
    const row = rows[0];
    if (!row) return undefined;
    const seq = Number(row.chain_seq);
    if (hmacKey !== undefined && row.mac !== headMac(hmacKey, instance, seq, row.hash)) {
      log.error(
        { instance, seq },
        "pgwarden audit: the store's head for this instance does not verify; its chain starts again at 1",
      );
      return undefined;
    }
    log.warn(
      { instance, seq },
      "pgwarden audit: no spool for this instance; its chain goes on from the store's head",
    );
    return { seq, hash: row.hash };
  } catch {
    // No store yet (a first start), or out of reach: nothing to go on from.
    return undefined;
  } finally {
    await c.end().catch(() => {});
  }
}
