import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditConfigSchema } from '../audit/config.js';
import type { AuditReader } from '../audit/store-reader.js';
import Fastify, { type FastifyInstance } from 'fastify';
import { buildApiApp, requireTokens } from './app.js';

const TOKEN = 'auth-responder-token-'.padEnd(40, 'a');
/** Every answer of the stub store carries this, so a leak shows in any response body. */
const SECRET = 'SECRET-DECISION-DATA';

const decision = { id: 'd1', sql: `SELECT '${SECRET}'`, sessionId: 's1' };
const stubReader = {
  search: async () => ({ items: [decision], nextCursor: null }),
  get: async () => decision,
  session: async () => [decision],
  aggregate: async () => [{ key: SECRET, count: 1 }],
  overTime: async () => [],
  instances: async () => [{ instance: SECRET }],
  all: async function* () {
    yield decision;
  },
  pool: {
    query: async () => {
      throw Object.assign(new Error('no store in this test'), { code: '08006' });
    },
  },
} as unknown as AuditReader;

let app: FastifyInstance;

beforeAll(async () => {
  const api = auditConfigSchema.parse({
    api: { tokens: [{ name: 'oncall', token: TOKEN, roles: ['responder'] }] },
  }).api;
  app = await buildApiApp(api, { reader: stubReader, logger: pino({ level: 'silent' }) });
});

afterAll(async () => {
  await app.close();
});

describe('API authentication by matched route', () => {
  it('serves data only with a token on the normal path', async () => {
    const ok = await app.inject({ url: '/api/v1/decisions', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toContain(SECRET);
    const none = await app.inject({ url: '/api/v1/decisions' });
    expect(none.statusCode).toBe(401);
    expect(none.body).not.toContain(SECRET);
  });

  it('never answers data without a token, however the URL is spelt', async () => {
    const spellings = [
      '/%61pi/v1/decisions',
      '/a%70i/v1/decisions',
      '/%61%70%69/v1/decisions',
      '/api/%761/decisions',
      '/api/v1/%64ecisions',
      '/api/v1/decisions/',
      '/API/v1/decisions',
      '/Api/v1/decisions',
      '//api/v1/decisions',
      '/api//v1/decisions',
      '/./api/v1/decisions',
      '/api/v1/../v1/decisions',
      '/api/v1/%2e%2e/v1/decisions',
      '/api/v1/decisions%3Fverdict=deny',
      '/api/v1/decisions%23x',
      '/api/v1/decisions;x',
      '/%61pi/v1/decisions/d1',
      '/%61pi/v1/sessions/s1',
      '/%61pi/v1/aggregates?by=verdict',
      '/%61pi/v1/instances',
      '/%61pi/v1/export?format=ndjson',
      '/%61pi/v1/verify',
      '/api/v1/decisions?x=%00',
      '/nothing-here',
    ];
    for (const url of spellings) {
      for (const method of ['GET', 'HEAD'] as const) {
        const res = await app.inject({ method, url });
        expect([401, 404], `${method} ${url}`).toContain(res.statusCode);
        expect(res.body, `${method} ${url}`).not.toContain(SECRET);
      }
    }
  });

  it('refuses a matched route reached by an encoded path without a token (401)', async () => {
    for (const url of ['/%61pi/v1/decisions', '/a%70i/v1/instances']) {
      const res = await app.inject({ url });
      expect(res.statusCode, url).toBe(401);
    }
    // With a token the decoded path is the real route, which is fine: the token was checked.
    const res = await app.inject({
      url: '/%61pi/v1/decisions',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.statusCode).toBe(200);
  });

  it('answers unmatched routes 404 without data, once authenticated', async () => {
    const res = await app.inject({ url: '/API/v1/decisions', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: 'not_found' });
  });

  it('keeps the page and the OpenAPI document public', async () => {
    for (const url of ['/', '/app.js', '/app.css', '/openapi.json']) {
      const res = await app.inject({ url });
      expect(res.statusCode, url).toBe(200);
      expect(res.body).not.toContain(SECRET);
    }
    expect((await app.inject({ method: 'HEAD', url: '/app.js' })).statusCode).toBe(200);
  });

  it('refuses to register a public route outside the page and document list', async () => {
    const a = Fastify();
    requireTokens(a, auditConfigSchema.parse({}).api);
    expect(() => a.get('/api/v1/leak', { config: { public: true } }, async () => SECRET)).toThrow(
      /marked public/,
    );
    a.get('/app.js', { config: { public: true } }, async () => 'page');
    a.get('/api/v1/private', async () => SECRET);
    expect((await a.inject({ url: '/app.js' })).statusCode).toBe(200);
    expect((await a.inject({ url: '/api/v1/private' })).statusCode).toBe(401);
    await a.close();
  });
});

describe('the log of refused requests', () => {
  it('holds a line per address per minute, however many requests a tokenless flood sends', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(l) });
    const api = auditConfigSchema.parse({
      api: { tokens: [{ name: 'oncall', token: TOKEN, roles: ['responder'] }] },
    }).api;
    const flooded = await buildApiApp(api, { reader: stubReader, logger });
    try {
      for (let i = 0; i < 300; i++) {
        const res = await flooded.inject({ url: '/api/v1/decisions', remoteAddress: '10.0.0.9' });
        expect(res.statusCode).toBe(401);
      }
      // The benign look-alike: another client's refusal, and a responder's request, are logged.
      await flooded.inject({ url: '/api/v1/decisions', remoteAddress: '10.0.0.10' });
      await flooded.inject({ url: '/api/v1/instances', headers: { authorization: `Bearer ${TOKEN}` } });
      const msgs = lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
      expect(msgs).toEqual(['api auth refused', 'api auth refused', 'api request']);
    } finally {
      await flooded.close();
    }
  });
});
