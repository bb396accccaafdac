import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../config/load.js';
import { TokenError, createTokenVerifier, mintToken, parseTtl } from './token.js';

const secret = 'unit-test-secret-unit-test-secret-0123';
const base = { upstream: { database: 'app', user: 'svc' } };
const hsAuth = validateConfig({
  ...base,
  auth: { hs256Secret: secret, issuer: 'https://idp.test/', audience: 'pgwarden' },
}).auth;

describe('HS256 tokens', () => {
  const verify = createTokenVerifier(hsAuth);

  it('maps claims to an identity: human, agent from act.sub, tenant, roles, token id', async () => {
    const t = await mintToken(hsAuth, {
      tenant: 'acme',
      human: 'alice@acme.test',
      agent: 'support-bot',
      roles: ['analyst'],
      ttlSeconds: 60,
      tokenId: 'tok-1',
    });
    await expect(verify(t, 'startup-user')).resolves.toMatchObject({
      human: 'alice@acme.test',
      agent: 'support-bot',
      tenant: 'acme',
      roles: ['analyst'],
      tokenId: 'tok-1',
    });
  });

  it('takes the agent from the startup user name when there is no actor claim', async () => {
    const t = await mintToken(hsAuth, { tenant: 'acme', human: 'alice@acme.test', ttlSeconds: 60 });
    expect((await verify(t, 'report-bot')).agent).toBe('report-bot');
  });

  it('refuses expired, wrongly signed, wrong issuer or audience, and tenant-less tokens', async () => {
    const expired = await mintToken(hsAuth, { tenant: 'acme', human: 'a', ttlSeconds: -60 });
    await expect(verify(expired, 'u')).rejects.toMatchObject({ reason: 'expired' });
    const other = await mintToken(
      { ...hsAuth, hs256Secret: 'another-secret-another-secret-0123456' },
      { tenant: 'acme', human: 'a', ttlSeconds: 60 },
    );
    await expect(verify(other, 'u')).rejects.toBeInstanceOf(TokenError);
    const key = new TextEncoder().encode(secret);
    const sign = (
      iss: string,
      aud: string,
      claims: Record<string, unknown> = { tenant: 'acme' },
    ): Promise<string> =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('a')
        .setIssuer(iss)
        .setAudience(aud)
        .setExpirationTime('1m')
        .sign(key);
    await expect(verify(await sign('https://evil.test/', 'pgwarden'), 'u')).rejects.toMatchObject({
      reason: 'invalid',
    });
    await expect(verify(await sign('https://idp.test/', 'other'), 'u')).rejects.toMatchObject({
      reason: 'invalid',
    });
    await expect(verify(await sign('https://idp.test/', 'pgwarden', {}), 'u')).rejects.toMatchObject({
      reason: 'claims',
    });
    await expect(
      verify(await sign('https://idp.test/', 'pgwarden', { tenant: 'acme', roles: 42 }), 'u'),
    ).rejects.toMatchObject({ reason: 'claims' });
  });

  it('refuses alg=none and an HS256 token signed with a public key', async () => {
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"a","tenant":"acme"}').toString('base64url')}.`;
    await expect(verify(none, 'u')).rejects.toBeInstanceOf(TokenError);
  });
});

describe('ES256 tokens from a JWKS file, with configured claim names', () => {
  it('verifies with the public key and maps custom claim names', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const dir = mkdtempSync(join(tmpdir(), 'pgwarden-jwks-'));
    const jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
    const auth = validateConfig({
      ...base,
      auth: { jwksFile, claims: { tenant: 'org', human: 'email', roles: 'groups' } },
    }).auth;
    const verify = createTokenVerifier(auth);
    const t = await new SignJWT({ org: 'globex', email: 'bob@globex.test', groups: 'support analyst' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setSubject('ignored')
      .setExpirationTime('5m')
      .sign(privateKey);
    await expect(verify(t, 'bot')).resolves.toMatchObject({
      human: 'bob@globex.test',
      tenant: 'globex',
      roles: ['support', 'analyst'],
    });
    const hs = await new SignJWT({ org: 'globex', email: 'b' })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(secret));
    await expect(verify(hs, 'bot')).rejects.toBeInstanceOf(TokenError);
  });
});

describe('parseTtl', () => {
  it('reads s, m, h, d and refuses anything else', () => {
    expect(parseTtl('15m')).toBe(900);
    expect(parseTtl('2h')).toBe(7200);
    expect(() => parseTtl('15')).toThrow();
  });
});
