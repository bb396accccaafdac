import type { FastifyInstance } from 'fastify';
import type { DeliveredHead } from '../audit/decision-log.js';
import type { AuditReader } from '../audit/store-reader.js';
import { verifyAll, type InstanceReport } from '../audit/verify.js';
import { verifyQuery } from './params.js';

/** Seconds a client is asked to wait (Retry-After) while a verification runs. */
const RETRY_AFTER_S = 5;

/**
 * The running instance's own report, checked against what it delivered: a store whose chain for it
 * ends before that position had its newest entries deleted and an older head put back, which the
 * store alone cannot tell (a head's MAC does not stop a replay; red team, round 25).
 */
function againstDelivered(r: InstanceReport, delivered: DeliveredHead): InstanceReport {
  if (r.instance !== delivered.instance || !r.ok) return r;
  if (r.lastSeq >= delivered.seq) return delivered.confirmed ? r : { ...r, ...unconfirmed(delivered) };
  return {
    ...r,
    ok: false,
    problem: {
      kind: 'deleted',
      chainSeq: r.lastSeq + 1,
      recordId: null,
      message: `this instance delivered chain seq up to ${delivered.seq}, but the store's chain ends at ${r.lastSeq}: its newest entries were deleted and an older head put back`,
    },
  };
}

/**
 * The instance's newest entries had not all reached the store when verify ran (its shipper behind,
 * or blocked by someone holding a lock in the store): the chain checks out up to what it has
 * committed, and nothing can be said of the rest yet.
 */
function unconfirmed(d: DeliveredHead): { delivering: string } {
  return {
    delivering: `this instance's entries after chain seq ${d.seq} were not all in the store yet: verify again once they are (its shipper is behind, or blocked in the store)`,
  };
}

export function registerVerifyRoutes(
  app: FastifyInstance,
  reader: AuditReader,
  hmacKey: string | undefined,
  deliveredHead?: () => Promise<DeliveredHead | null>,
): void {
  // Walks whole chains: meant for a responder's check, not for polling. One runs at a time: it
  // hashes every record on the event loop pgwarden's sessions share, and 64 at once over 156,000
  // records held a SELECT 1 for 1.2 s.
  let running = false;
  app.get('/api/v1/verify', async (req, reply) => {
    const q = verifyQuery.parse(req.query);
    if (running) {
      return reply
        .code(429)
        .header('retry-after', String(RETRY_AFTER_S))
        .send({ error: 'busy', message: 'a verification is already running; try again once it is done' });
    }
    running = true;
    try {
      // Read before verify's snapshot: everything delivered by then is in it.
      const delivered = (await deliveredHead?.()) ?? null;
      const reports = await verifyAll(reader.pool, hmacKey, q.instance);
      const instances = delivered ? reports.map((r) => againstDelivered(r, delivered)) : reports;
      return { ok: instances.every((i) => i.ok), hmac: hmacKey !== undefined, instances };
    } finally {
      running = false;
    }
  });
}
