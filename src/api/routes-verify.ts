import type { FastifyInstance } from 'fastify';
import type { AuditReader } from '../audit/store-reader.js';
import { verifyAll } from '../audit/verify.js';
import { verifyQuery } from './params.js';

/** Seconds a client is asked to wait (Retry-After) while a verification runs. */
const RETRY_AFTER_S = 5;

export function registerVerifyRoutes(
  app: FastifyInstance,
  reader: AuditReader,
  hmacKey: string | undefined,
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
      const instances = await verifyAll(reader.pool, hmacKey, q.instance);
      return { ok: instances.every((i) => i.ok), hmac: hmacKey !== undefined, instances };
    } finally {
      running = false;
    }
  });
}
