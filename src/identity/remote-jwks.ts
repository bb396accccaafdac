import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';

export interface KeySetLogger {
  info(o: object, m?: string): void;
  error(o: object, m?: string): void;
}

export interface RemoteKeySetOptions {
  /** A key set older than this is fetched again, in the background: logins do not wait for it. */
  readonly refreshMs: number;
  /** A key set older than this is no longer trusted: the identity provider's keys may have changed. */
  readonly maxStaleMs: number;
  /** Fetches, whatever their outcome, are at least this far apart. */
  readonly minFetchIntervalMs: number;
  readonly timeoutMs: number;
  readonly logger?: KeySetLogger | undefined;
  /** The clock, for tests. */
  readonly now?: () => number;
}

/** The largest key set read; an identity provider's is a few KB. */
const MAX_KEY_SET_BYTES = 1024 * 1024;

/**
 * The identity provider's keys from its JWKS URL, kept and served while its URL fails. jose's
 * remote key set forgot its keys ten minutes after the last good fetch and then refused every
 * login while the provider was down, and each token with an unknown key id made it fetch again
 * until a fetch succeeded (40 forged tokens drew 15 fetches in 1.7 s; red team, round 46). Here
 * the keys last `maxStaleMs`, they are refreshed in the background after `refreshMs`, and fetches
 * are at least `minFetchIntervalMs` apart whether they succeed or fail. A failed fetch is logged
 * at error level; the first good one after failures at info.
 */
export class RemoteKeySet {
  private keys: JWTVerifyGetKey | undefined;
  private fetchedAt = -Infinity;
  private attemptedAt = -Infinity;
  private inflight: Promise<void> | undefined;
  private failing = false;
  private readonly now: () => number;

  constructor(
    private readonly url: URL,
    private readonly opts: RemoteKeySetOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** Fetches the key set now (at start): the first login need not wait for it. */
  prefetch(): Promise<void> {
    return this.refreshInBackground();
  }

  /**
   * A refresh nobody waits for. refresh() itself never rejects (a failure is logged and the last
   * key set kept); this is the backstop, since an unhandled rejection ends the process, and with it
   * every session (red team, round 47: a key set jose could not read took pgwarden down).
   */
  private refreshInBackground(): Promise<void> {
    return this.refresh().catch((err: unknown) =>
      this.opts.logger?.error({ event: 'jwks_fetch_failed', url: this.url.href, err: String(err) }),
    );
  }

  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (this.now() - this.fetchedAt > this.opts.refreshMs) {
      // Without keys fit to use, the login waits for the fetch; with them, it does not.
      const refreshing = this.refreshInBackground();
      if (!this.usable()) await refreshing;
    }
    const keys = this.keys;
    if (!keys || !this.usable())
      throw new Error(
        `the identity provider's key set (${this.url.origin}) could not be fetched${this.keys ? ` for ${Math.round((this.now() - this.fetchedAt) / 1000)} s` : ''}`,
      );
    try {
      return await keys(header, token);
    } catch (err) {
      // A key id the set does not hold: the provider may have added a key since.
      if ((err as { code?: string }).code !== 'ERR_JWKS_NO_MATCHING_KEY') throw err;
      await this.refresh();
      const fresh = this.keys;
      if (fresh === undefined || fresh === keys) throw err;
      return fresh(header, token);
    }
  };

  private usable(): boolean {
    return this.keys !== undefined && this.now() - this.fetchedAt <= this.opts.maxStaleMs;
  }

  /** One fetch at a time, and none sooner than minFetchIntervalMs after the last. */
  private refresh(): Promise<void> {
    if (this.inflight) return this.inflight;
    if (this.now() - this.attemptedAt < this.opts.minFetchIntervalMs) return Promise.resolve();
    this.attemptedAt = this.now();
    this.inflight = this.fetchKeySet()
      .then((set) => createLocalJWKSet(set))
      .then(
        (keys) => {
          this.keys = keys;
          this.fetchedAt = this.now();
          if (this.failing)
            this.opts.logger?.info({ event: 'jwks_fetched', url: this.url.href }, 'key set fetched again');
          this.failing = false;
        },
        (err: Error) => {
          this.failing = true;
          this.opts.logger?.error(
            {
              event: 'jwks_fetch_failed',
              url: this.url.href,
              err: err.message,
              keptForSeconds: this.keys
                ? Math.round((this.opts.maxStaleMs - (this.now() - this.fetchedAt)) / 1000)
                : 0,
            },
            this.keys
              ? "the identity provider's key set could not be fetched; the last one is used until it is too old"
              : "the identity provider's key set could not be fetched; every login is refused until it is",
          );
        },
      )
      .finally(() => {
        this.inflight = undefined;
      });
    return this.inflight;
  }

  private async fetchKeySet(): Promise<JSONWebKeySet> {
    const res = await fetch(this.url, {
      signal: AbortSignal.timeout(this.opts.timeoutMs),
      headers: { accept: 'application/json' },
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    for await (const chunk of res.body ?? []) {
      bytes += chunk.length;
      if (bytes > MAX_KEY_SET_BYTES) throw new Error(`key set over ${MAX_KEY_SET_BYTES} bytes`);
      chunks.push(chunk);
    }
    const set = JSON.parse(Buffer.concat(chunks).toString('utf8')) as JSONWebKeySet;
    if (!set || !Array.isArray(set.keys)) throw new Error('not a JWK set (no "keys" array)');
    return set;
  }
}
