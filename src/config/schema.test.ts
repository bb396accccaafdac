import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfigFile, validateConfig } from './load.js';
import { configSchema } from './schema.js';

const doc = readFileSync(new URL('../../docs/config.md', import.meta.url), 'utf8');

function leafKeys(schema: unknown, prefix = ''): string[] {
  const s = schema as { properties?: Record<string, unknown>; anyOf?: unknown[]; allOf?: unknown[] };
  const inner = s.properties ? s : ((s.allOf?.[0] ?? s.anyOf?.[0]) as typeof s | undefined);
  if (!inner?.properties) return [prefix];
  return Object.entries(inner.properties).flatMap(([k, v]) => leafKeys(v, prefix ? `${prefix}.${k}` : k));
}

const minimal = { upstream: { database: 'app', user: 'svc' }, auth: { hs256Secret: 'x'.repeat(32) } };

describe('config', () => {
  it('documents every key in docs/config.md (the audit section lives in docs/decision-log.md)', () => {
    const keys = leafKeys(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }));
    for (const key of keys.filter((k) => !k.startsWith('audit.'))) expect(doc, key).toContain(`\`${key}\``);
  });

  it('refuses unknown keys with their path, and freezes what it accepts', () => {
    expect(() => validateConfig({ ...minimal, upstream: { ...minimal.upstream, hots: 'x' } })).toThrow(
      /upstream/,
    );
    expect(() => validateConfig({ ...minimal, auth: {} })).toThrow(/hs256Secret, jwksFile or jwksUrl/);
    expect(() =>
      validateConfig({ ...minimal, auth: { ...minimal.auth, jwksUrl: 'https://idp.test/jwks' } }),
    ).toThrow(/more than one key source: hs256Secret \(or PGWARDEN_HS256_SECRET\)/);
    expect(() =>
      validateConfig({ ...minimal, auth: { jwksFile: '/k.json', jwksUrl: 'https://idp.test/jwks' } }),
    ).toThrow(/more than one key source/);
    const c = validateConfig(minimal);
    expect(c.limits.maxStartupMessageBytes).toBe(64 * 1024);
    expect(c.limits.maxStartupConnections).toBe(64);
    expect(c.limits.maxStartupConnectionsPerAddress).toBe(16);
    expect(c.auth.maxTokenLifetimeSec).toBe(86_400);
    expect(Object.isFrozen(c.limits)).toBe(true);
    expect(c.tls.allowPlaintext).toBe('loopback');
  });

  it('refuses PGWARDEN_HS256_SECRET with a JWKS source in the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgw-config-'));
    const file = join(dir, 'pgwarden.yaml');
    writeFileSync(
      file,
      'upstream: { database: app, user: svc }\nauth: { jwksUrl: "https://idp.test/jwks" }\n',
    );
    expect(loadConfigFile(file, {}).auth.jwksUrl).toBe('https://idp.test/jwks');
    expect(() => loadConfigFile(file, { PGWARDEN_HS256_SECRET: 'y'.repeat(32) })).toThrow(
      /auth: auth has more than one key source/,
    );
  });
});
