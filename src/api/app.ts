import type { DeliveredHead } from '../audit/decision-log.js';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AuditConfig } from '../audit/config.js';
import { BadCursorError, type AuditReader } from '../audit/store-reader.js';
import { LogThrottle } from '../errors/log-throttle.js';
import { tokenAuthenticator } from './auth.js';
import { openApiDocument } from './openapi.js';
import { registerDecisionRoutes } from './routes-decisions.js';
import { registerExportRoutes } from './routes-export.js';
import { registerVerifyRoutes } from './routes-verify.js';
import { registerWebPage } from './web.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without a token (see PUBLIC_URLS); only the page's files and the OpenAPI document. */
    public?: boolean;
  }
}

export interface ApiDeps {
  readonly reader: AuditReader;
  readonly logger: Logger;
  /** The chain's HMAC key, so /verify can check it too. */
  readonly hmacKey?: string | undefined;
  /** The running instance's delivered chain position (DecisionLog.deliveredHead), for /verify. */
  readonly deliveredHead?: () => Promise<DeliveredHead | null>;
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
 * Routes that may be served without a token: the page's static files and the OpenAPI document,
 * none of which holds data. A route is public when it is registered with `config: { public: true }`
 * and its url is in this list.
 */
export const PUBLIC_URLS: ReadonlySet<string> = new Set(['/', '/app.js', '/app.css', '/openapi.json']);

function isPublic(config: { public?: boolean } | undefined, url: string | undefined): boolean {
  return config?.public === true && url !== undefined && PUBLIC_URLS.has(url);
}

/**
 * Installs the token check. Authentication is decided by the route the router matched, never by
 * the raw URL: the router decodes the path (`/%61pi/...` matches `/api/...`), so a prefix test on
 * `req.url` can be walked around. Every route needs a token unless it is public (see PUBLIC_URLS),
 * and so does every unmatched URL (it gets 404 without data once the token is accepted).
 * Call before registering routes.
 */
export function requireTokens(app: FastifyInstance, api: AuditConfig['api']): void {
  const authenticate = tokenAuthenticator(api);
  const refusals = new LogThrottle();

  // A route is public only by its own config, checked when it is registered; nothing under /api/
  // may be public, whatever a mistaken config says.
  app.addHook('onRoute', (r) => {
    if (r.config?.public === true && !PUBLIC_URLS.has(r.url)) {
      throw new Error(`route ${r.url} is marked public but is not a page or document route`);
    }
  });

  app.addHook('onRequest', async (req, reply) => {
    if (!req.is404 && isPublic(req.routeOptions.config, req.routeOptions.url)) return;
    const r = authenticate(req.headers.authorization);
    const route = req.routeOptions.url ?? '(no route)';
    if (!r.ok) {
      const { log, summary } = refusals.note(req.ip);
      if (summary) req.log.warn(summary, 'api auth refused more often than logged in the last minute');
      if (log) req.log.warn({ status: r.status, reason: r.reason, ip: req.ip, route }, 'api auth refused');
      return reply.code(r.status).send({ error: r.status === 401 ? 'unauthorized' : 'forbidden' });
    }
    // Who looked at the decision log is itself worth knowing.
    req.log.info({ who: r.principal.name, route, url: req.url.split('?')[0] }, 'api request');
  });
}

/**
 * The responders' API and web page, built without listening so tests use inject().
 * Every route needs a bearer token with the responder role except the public ones above.
 */
export async function buildApiApp(api: AuditConfig['api'], deps: ApiDeps): Promise<FastifyInstance> {
  const log: FastifyBaseLogger = deps.logger.child({ component: 'audit-api' });
  const app = Fastify({
    loggerInstance: log,
    // Fastify's two lines per request would undo the throttle on refusals (see requireTokens); an
    // accepted request gets one line there, naming who looked at the log.
    logController: new LogController({ disableRequestLogging: true }),
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
  requireTokens(app, api);

  app.setNotFoundHandler(async (_req, reply) => reply.code(404).send({ error: 'not_found' }));

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof z.ZodError) {
      return reply.code(400).send({
        error: 'bad_request',
        issues: err.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      });
    }
    if (err instanceof BadCursorError)
      return reply.code(400).send({ error: 'bad_request', message: err.message });
    // A value the store refuses as data (class 22: a NUL in a path, a date out of range) is the
    // request's fault, not the server's.
    if (/^22/.test(String((err as { code?: unknown }).code ?? '')))
      return reply
        .code(400)
        .send({ error: 'bad_request', message: 'the store refused a value of the request' });
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

  app.get('/openapi.json', { config: { public: true } }, async () => openApiDocument);
  registerDecisionRoutes(app, deps.reader, api.pageSize);
  registerExportRoutes(app, deps.reader, api.maxExportRows);
  registerVerifyRoutes(app, deps.reader, deps.hmacKey, deps.deliveredHead);
  registerWebPage(app);
  await app.ready();
  return app;
}
