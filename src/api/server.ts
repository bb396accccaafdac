import type { AuditConfig } from '../audit/config.js';
import { buildApiApp, type ApiDeps } from './app.js';

/**
 * Listens on `audit.api.host:port` (port 0 picks a free one). Returns the base URL, e.g.
 * http://127.0.0.1:6480 (the page is at /, the API under /api/v1, the OpenAPI document at
 * /openapi.json).
 */
export async function startApi(
  config: AuditConfig,
  deps: ApiDeps,
): Promise<{ url: string; close(): Promise<void> }> {
  if (config.api.tokens.every((t) => !t.roles.includes(config.api.responderRole))) {
    deps.logger.warn(
      { role: config.api.responderRole },
      'pgwarden audit: no API token has the responder role; every API request will be refused',
    );
  }
  const app = await buildApiApp(config.api, deps);
  await app.listen({ host: config.api.host, port: config.api.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.api.port;
  const host = config.api.host.includes(':') ? `[${config.api.host}]` : config.api.host;
  const url = `http://${host}:${port}`;
  deps.logger.info({ url }, 'pgwarden audit: API and web page listening');
  return { url, close: () => app.close() };
}
