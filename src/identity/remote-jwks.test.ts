import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, jwtVerify, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteKeySet } from './remote-jwks.js';

// The identity provider: its key set, or failures of the kinds a provider has.
let mode: 'ok' | 'fail' | 'hang' | 'bad' = 'ok';
let fetches = 0;
let server: Server;
let url: URL;
let privateKey: CryptoKey;
let jwk: JWK;

beforeAll(async () => {
  const pair = await generateKeyPair('ES256');
  privateKey = pair.privateKey;
  jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  server = createServer((_req, res) => {
    fetches++;
    if (mode === 'hang') return;
    if (mode === 'fail') return void res.writeHead(500).end('down');
    if (mode === 'bad')
      return void res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ keys: [jwk, 1] }));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`);
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

const token = (kid = 'k1'): Promise<string> =>
  new SignJWT({ tenant: 'acme' })
    .setProtectedHeader({ alg: 'ES256', kid })
    .setExpirationTime('1h')
    .sign(privateKey);

function keySet(clock: { t: number }, errors: string[] = []): RemoteKeySet {
  return new RemoteKeySet(url, {
    refreshMs: 600_000,
    maxStaleMs: 3_600_000,
    minFetchIntervalMs: 30_000,
    timeoutMs: 300,
    now: () => clock.t,
    logger: { info: () => {}, error: (o) => errors.push((o as { event: string }).event) },
  });
}

describe('the identity provider key set', () => {
  it("keeps serving the last key set while the provider's URL fails, until it is too old (red team, round 46)", async () => {
    mode = 'ok';
    const clock = { t: 1_000_000 };
    const errors: string[] = [];
    const ks = keySet(clock, errors);
    await ks.prefetch();
    const verify = async (): Promise<unknown> => (await jwtVerify(await token(), ks.getKey)).payload.tenant;
    expect(await verify()).toBe('acme');

    // Ten minutes on, the provider down: jose's own key set refused every login here.
    mode = 'fail';
    clock.t += 601_000;
    expect(await verify()).toBe('acme');
    await new Promise((r) => setTimeout(r, 50));
    expect(errors).toEqual(['jwks_fetch_failed']);
    // Hanging: a login does not wait for the fetch while the keys are fit to use.
    mode = 'hang';
    clock.t += 31_000;
    const started = Date.now();
    expect(await verify()).toBe('acme');
    expect(Date.now() - started).toBeLessThan(200);
    await new Promise((r) => setTimeout(r, 400));

    // Past maxStaleMs the keys are no longer trusted.
    mode = 'fail';
    clock.t += 3_600_000;
    await expect(verify()).rejects.toThrow(/key set .* could not be fetched/);
    // The provider back: the next login after the pause fetches and is served.
    mode = 'ok';
    clock.t += 31_000;
    expect(await verify()).toBe('acme');
  });

  it('fetches at most once per interval for tokens with unknown key ids, whether fetches fail or not', async () => {
    mode = 'ok';
    const clock = { t: 5_000_000 };
    const ks = keySet(clock);
    await ks.prefetch();
    mode = 'fail';
    clock.t += 31_000;
    const before = fetches;
    for (let i = 0; i < 40; i++) {
      await expect(jwtVerify(await token(`forged-${i}`), ks.getKey)).rejects.toMatchObject({
        code: 'ERR_JWKS_NO_MATCHING_KEY',
      });
    }
    expect(fetches - before).toBe(1);
    // The look-alike: a key id the provider has just added is found by the next fetch.
    mode = 'ok';
    clock.t += 31_000;
    jwk = { ...jwk, kid: 'k2' };
    expect((await jwtVerify(await token('k2'), ks.getKey)).payload.tenant).toBe('acme');
    jwk = { ...jwk, kid: 'k1' };
  });

  it('refuses logins quickly while no key set was ever fetched', async () => {
    mode = 'fail';
    const ks = keySet({ t: 9_000_000 });
    await expect(jwtVerify(await token(), ks.getKey)).rejects.toThrow(/could not be fetched/);
  });

  it('keeps the last key set when the provider serves one jose cannot read, and never rejects unheard (red team, round 47)', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown): void => void unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    try {
      mode = 'bad';
      const clock = { t: 20_000_000 };
      const errors: string[] = [];
      const ks = keySet(clock, errors);
      await ks.prefetch();
      await expect(jwtVerify(await token(), ks.getKey)).rejects.toThrow(/could not be fetched/);
      mode = 'ok';
      clock.t += 31_000;
      expect((await jwtVerify(await token(), ks.getKey)).payload.tenant).toBe('acme');
      // In the background, ten minutes on: the bad set is logged and the last good one used.
      mode = 'bad';
      clock.t += 601_000;
      expect((await jwtVerify(await token(), ks.getKey)).payload.tenant).toBe('acme');
      await new Promise((r) => setTimeout(r, 100));
      expect(errors).toEqual(['jwks_fetch_failed', 'jwks_fetch_failed']);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      mode = 'ok';
    }
  });
});
