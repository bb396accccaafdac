import type { FastifyInstance } from 'fastify';
import type { AuditReader } from '../audit/store-reader.js';
import { verifyAll } from '../audit/verify.js';
import { verifyQuery } from './params.js';

export function registerVerifyRoutes(
  app: FastifyInstance,
  reader: AuditReader,
  hmacKey: string | undefined,
): void {
  // Walks whole chains: meant for a responder's check, not for polling.
  app.get('/api/v1/verify', async (req) => {
    const q = verifyQuery.parse(req.query);
    const instances = await verifyAll(reader.pool, hmacKey, q.instance);
    return { ok: instances.every((i) => i.ok), hmac: hmacKey !== undefined, instances };
  });
}
