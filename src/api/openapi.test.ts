import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { auditConfigSchema } from '../audit/config.js';
import { AuditReader } from '../audit/store-reader.js';
import { buildApiApp } from './app.js';
import { openApiDocument } from './openapi.js';

describe('OpenAPI document', () => {
  it('describes exactly the routes the app serves under /api/', async () => {
    // No request reaches the store here: building the app does not query it.
    const reader = new AuditReader('postgres://u:p@127.0.0.1:1/none');
    const routes: string[] = [];
    const app = await buildApiApp(auditConfigSchema.parse({}).api, {
      reader,
      logger: pino({ level: 'silent' }),
      onRoute: (method, url) => {
        if (method === 'GET' && url.startsWith('/api/')) routes.push(url.replace(/:(\w+)/g, '{$1}'));
      },
    });
    expect(routes.sort()).toEqual(Object.keys(openApiDocument.paths).sort());
    const res = await app.inject({ url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ openapi: '3.1.0' });
    await app.close();
    await reader.close();
  });
});
