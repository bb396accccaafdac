import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { validateConfig } from './load.js';
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
    expect(() => validateConfig({ ...minimal, upstream: { ...minimal.upstream, hots: 'x' } })).toThrow(/upstream/);
    expect(() => validateConfig({ ...minimal, auth: {} })).toThrow(/hs256Secret, jwksFile or jwksUrl/);
    const c = validateConfig(minimal);
    expect(Object.isFrozen(c.limits)).toBe(true);
    expect(c.tls.allowPlaintext).toBe('loopback');
  });
});
