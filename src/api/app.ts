import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AuditConfig } from '../audit/config.js';
import { BadCursorError, type AuditReader } from '../audit/store-reader.js';
import { tokenAuthenticator } from './auth.js';
import { openApiDocument } from './openapi.js';
import { registerDecisionRoutes } from './routes-decisions.js';
import { registerExportRoutes } from './routes-export.js';
import { registerVerifyRoutes } from './routes-verify.js';
import { registerWebPage } from './web.js';

export interface ApiDeps {
  readonly reader: AuditReader;
  readonly logger: Logger;
  /** The chain's HMAC key, so /verify can check it too. */
  readonly hmacKey?: string | undefined;
  /** Told of every route as it is registered (the OpenAPI test compares them with the document). */
  readonly onRoute?: (method: string, url: string) => void;
}

/** SQLSTATE classes that mean the store cannot answer now (connection, shutdown, missing database). */
function storeUnavailable(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return (
    /^(08|57|53|3D)/.test(code) ||
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH'].includes(code) ||
    /timeout exceeded when trying to connect|Connection terminated/i.test((err as Error).message ?? '')
  );
}

/**
 * The responders' API and web page, built without listening so tests use inject().
 * Everything under /api/ needs a bearer token with the responder role; the page shell and the
 * OpenAPI document hold no data and are public.
 */
export async function buildApiApp(api: AuditConfig['api'], deps: ApiDeps): Promise<FastifyInstance> {
  const log: FastifyBaseLogger = deps.logger.child({ component: 'audit-api' });
  const app = Fastify({
    loggerInstance: log,
    // Cursors and SQL search terms are short; nothing legitimate sends a large request.
    bodyLimit: 64 * 1024,
    routerOptions: { maxParamLength: 500 },
  });
  if (deps.onRoute) {
    const cb = deps.onRoute;
    app.addHook('onRoute', (r) => {
      for (const m of [r.method].flat()) cb(m, r.url);
    });
  }
  const authenticate = tokenAuthenticator(api);

  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/api/')) return;
    const r = authenticate(req.headers.authorization);
    if (!r.ok) {
      req.log.warn(
        { status: r.status, reason: r.reason, ip: req.ip, url: req.url.split('?')[0] },
        'api auth refused',
      );
      return reply.code(r.status).send({ error: r.status === 401 ? 'unauthorized' : 'forbidden' });
    }
    // Who looked at the decision log is itself worth knowing.
    req.log.info({ who: r.principal.name, url: req.url.split('?')[0] }, 'api request');
  });

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof z.ZodError) {
      return reply.code(400).send({
        error: 'bad_request',
        issues: err.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      });
    }
    if (err instanceof BadCursorError)
      return reply.code(400).send({ error: 'bad_request', message: err.message });
    if (storeUnavailable(err)) {
      req.log.warn({ err: (err as Error).message }, 'audit store unavailable');
      return reply.code(503).send({ error: 'store_unavailable' });
    }
    const status = (err as { statusCode?: number }).statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      return reply.code(status).send({ error: 'bad_request', message: (err as Error).message });
    }
    req.log.error({ err }, 'api error');
    return reply.code(500).send({ error: 'internal' });
  });

  app.get('/openapi.json', async () => openApiDocument);
  registerDecisionRoutes(app, deps.reader, api.pageSize);
  registerExportRoutes(app, deps.reader, api.maxExportRows);
  registerVerifyRoutes(app, deps.reader, deps.hmacKey);
  registerWebPage(app);
  await app.ready();
  return app;
}
