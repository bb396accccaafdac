import { createHmac } from 'node:crypto';
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
    // Text the store cannot keep as sent, or that displays as other text (red team, round 33).
    for (const claims of [
      { tenant: 'acme\u0000x' },
      { tenant: 'ac\u202eme' },
      { tenant: 'acme', roles: ['r\ud800'] },
      { tenant: 'acme', act: { sub: 'bot\u0007' } },
      { tenant: 'acme', jti: 'id\udc00' },
      // Invisible: the record would read as another human's (red team, round 46).
      { tenant: 'acme', act: { sub: 'support\u200b-bot' } },
      { tenant: 'acme\ufeff' },
      { tenant: 'acme', roles: ['lead\u2060'] },
      { tenant: 'acme\u2028' },
    ])
      await expect(verify(await sign('https://idp.test/', 'pgwarden', claims), 'u')).rejects.toMatchObject({
        reason: 'claims',
      });
    await expect(
      verify(await sign('https://idp.test/', 'pgwarden', { tenant: 'acme' }), 'bot\u001b[2J'),
    ).rejects.toMatchObject({
      reason: 'claims',
    });
    // Benign look-alikes: non-Latin names, emoji (a surrogate pair), spaces and punctuation.
    const ok = await verify(
      await sign('https://idp.test/', 'pgwarden', {
        tenant: 'mañana-ü 株式会社 🚀',
        roles: ['lead (EU)'],
        act: { sub: 'می\u200cخواهم 👩\u200d💻' },
      }),
      'u',
    );
    expect(ok).toMatchObject({
      tenant: 'mañana-ü 株式会社 🚀',
      roles: ['lead (EU)'],
      agent: 'می\u200cخواهم 👩\u200d💻',
    });
  });

  it('refuses alg=none and an HS256 token signed with a public key', async () => {
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"a","tenant":"acme"}').toString('base64url')}.`;
    await expect(verify(none, 'u')).rejects.toBeInstanceOf(TokenError);
  });
});

/** An HS256 token over exactly this payload text (JSON.stringify cannot write -0 or 2^53 + 1). */
function signRaw(payloadJson: string): string {
  const enc = (s: string): string => Buffer.from(s).toString('base64url');
  const input = `${enc('{"alg":"HS256","typ":"JWT"}')}.${enc(payloadJson)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

const claimsOf = (extra: string, now = Math.floor(Date.now() / 1000)): string =>
  `{"iss":"https://idp.test/","aud":"pgwarden","sub":"a","iat":${now},"exp":${now + 60}${extra}}`;

describe('numeric claims', () => {
  const verify = createTokenVerifier(hsAuth);

  it('accepts a safe integer as its decimal text', async () => {
    await expect(verify(signRaw(claimsOf(',"tenant":9007199254740991')), 'u')).resolves.toMatchObject({
      tenant: '9007199254740991',
    });
    await expect(verify(signRaw(claimsOf(',"tenant":42,"jti":7')), 'u')).resolves.toMatchObject({
      tenant: '42',
      tokenId: '7',
    });
  });

  it.each(['9007199254740993', '1e21', '1.5', '-0', '-9007199254740993'])(
    'refuses %s: it has no exact text form',
    async (n) => {
      await expect(verify(signRaw(claimsOf(`,"tenant":${n}`)), 'u')).rejects.toMatchObject({
        reason: 'claims',
      });
      await expect(verify(signRaw(claimsOf(`,"tenant":"acme","sub":${n}`)), 'u')).rejects.toMatchObject({
        reason: 'claims',
      });
    },
  );
});

describe('token lifetime', () => {
  const verify = createTokenVerifier(hsAuth);
  const now = Math.floor(Date.now() / 1000);
  const token = (fields: Record<string, number>): string =>
    signRaw(
      JSON.stringify({ iss: 'https://idp.test/', aud: 'pgwarden', sub: 'a', tenant: 'acme', ...fields }),
    );

  it('accepts a token that lives up to auth.maxTokenLifetimeSec (default one day)', async () => {
    expect(hsAuth.maxTokenLifetimeSec).toBe(86_400);
    await expect(verify(token({ iat: now, exp: now + 86_400 }), 'u')).resolves.toMatchObject({
      expiresAt: now + 86_400,
    });
    await expect(verify(token({ exp: now + 3600 }), 'u')).resolves.toMatchObject({ tenant: 'acme' });
  });

  it.each([
    ['no exp', { iat: now }],
    ['no exp and no iat', {}],
    ['exp far away', { iat: now, exp: 1e300 }],
    ['a lifetime one second too long', { iat: now, exp: now + 86_401 }],
    ['exp too far ahead without iat', { exp: now + 86_400 + 600 }],
    ['iat in the future', { iat: now + 3600, exp: now + 3700 }],
  ])('refuses a token with %s', async (_why, fields) => {
    await expect(verify(token(fields), 'u')).rejects.toMatchObject({ reason: 'claims' });
  });

  it('honours a configured maximum, and minting refuses a ttl above it', async () => {
    const short = validateConfig({
      ...base,
      auth: {
        hs256Secret: secret,
        issuer: 'https://idp.test/',
        audience: 'pgwarden',
        maxTokenLifetimeSec: 60,
      },
    }).auth;
    await expect(createTokenVerifier(short)(token({ iat: now, exp: now + 120 }), 'u')).rejects.toMatchObject({
      reason: 'claims',
      message: expect.stringContaining('maxTokenLifetimeSec'),
    });
    await expect(mintToken(short, { tenant: 'acme', human: 'a', ttlSeconds: 120 })).rejects.toThrow(
      /maxTokenLifetimeSec/,
    );
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
