import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { auditConfigSchema } from '../audit/config.js';
import { tokenAuthenticator } from './auth.js';

const responder = 'r'.repeat(40);
const viewer = 'v'.repeat(40);
const hashed = 'h'.repeat(40);
const api = auditConfigSchema.parse({
  api: {
    tokens: [
      { name: 'oncall', token: responder, roles: ['responder'] },
      { name: 'dashboard', token: viewer, roles: ['viewer'] },
      { name: 'vault', sha256: createHash('sha256').update(hashed).digest('hex'), roles: ['responder'] },
    ],
  },
}).api;
const auth = tokenAuthenticator(api);

describe('API bearer tokens', () => {
  it('accept a configured token with the responder role, plain or as a SHA-256', () => {
    expect(auth(`Bearer ${responder}`)).toMatchObject({ ok: true, principal: { name: 'oncall' } });
    expect(auth(`Bearer ${hashed}`)).toMatchObject({ ok: true, principal: { name: 'vault' } });
  });

  it('refuse a token without the role with 403, and unknown or missing ones with 401', () => {
    expect(auth(`Bearer ${viewer}`)).toMatchObject({ ok: false, status: 403 });
    expect(auth('Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln')).toMatchObject({
      ok: false,
      status: 401,
    });
    expect(auth(undefined)).toMatchObject({ ok: false, status: 401 });
    expect(auth(`Basic ${responder}`)).toMatchObject({ ok: false, status: 401 });
  });

  it('config refuses short tokens and a token given both ways', () => {
    expect(() =>
      auditConfigSchema.parse({ api: { tokens: [{ name: 'x', token: 'short', roles: [] }] } }),
    ).toThrow();
    expect(() =>
      auditConfigSchema.parse({ api: { tokens: [{ name: 'x', token: responder, sha256: 'a'.repeat(64) }] } }),
    ).toThrow();
  });
});
