import type { FastifyInstance } from 'fastify';
import type { AggregateBy, AuditReader, Interval } from '../audit/store-reader.js';
import { aggregateQuery, searchQuery, sessionQuery, toFilter } from './params.js';

export function registerDecisionRoutes(app: FastifyInstance, reader: AuditReader, pageSize: number): void {
  app.get('/api/v1/decisions', async (req) => {
    const q = searchQuery.parse(req.query);
    return reader.search(toFilter(q), { limit: q.limit ?? pageSize, cursor: q.cursor });
  });

  app.get<{ Params: { id: string } }>('/api/v1/decisions/:id', async (req, reply) => {
    const d = await reader.get(req.params.id);
    if (!d) return reply.code(404).send({ error: 'not_found' });
    return d;
  });

  // A session replayed in the order it ran: statements, verdicts, rewrites, rows, timings, errors,
  // a page at a time (`next`: the `after` of the next page).
  app.get<{ Params: { id: string } }>('/api/v1/sessions/:id', async (req, reply) => {
    const q = sessionQuery.parse(req.query);
    const page = await reader.session(req.params.id, { after: q.after, limit: q.limit ?? pageSize });
    if (page.items.length === 0 && q.after === undefined) return reply.code(404).send({ error: 'not_found' });
    return { sessionId: req.params.id, items: page.items, next: page.next };
  });

  app.get('/api/v1/aggregates', async (req) => {
    const q = aggregateQuery.parse(req.query);
    const f = toFilter(q);
    if (q.by === 'time') {
      return { by: 'time', interval: q.interval, buckets: await reader.overTime(q.interval as Interval, f) };
    }
    return { by: q.by, buckets: await reader.aggregate(q.by as AggregateBy, f, q.limit) };
  });

  app.get('/api/v1/instances', async () => ({ items: await reader.instances() }));
}
