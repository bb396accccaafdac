import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { AuditReader, DecisionView } from '../audit/store-reader.js';
import { safeJson } from '../audit/json-text.js';
import { csvHeader, csvRow } from './csv.js';
import { exportQuery, toFilter } from './params.js';

/** Streams every matching decision, a page at a time, so an export never sits in memory whole. */
export function registerExportRoutes(app: FastifyInstance, reader: AuditReader, maxRows: number): void {
  app.get('/api/v1/export', async (req, reply) => {
    const q = exportQuery.parse(req.query);
    const rows = reader.all(toFilter(q), Math.min(q.limit ?? maxRows, maxRows));
    // Read the first page before answering, so a store outage is a clean 503, not a cut stream.
    const first = await rows.next();
    async function* lines(): AsyncGenerator<string> {
      if (q.format === 'csv') yield csvHeader;
      const line = q.format === 'csv' ? csvRow : (d: DecisionView): string => safeJson(d) + '\n';
      if (!first.done) yield line(first.value);
      for await (const d of rows) yield line(d);
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    return reply
      .type(q.format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson')
      .header('content-disposition', `attachment; filename="pgwarden-decisions-${stamp}.${q.format}"`)
      .send(Readable.from(lines()));
  });
}
