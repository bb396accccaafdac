import { readFileSync } from 'node:fs';
import { SignJWT, createLocalJWKSet, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Config } from '../config/schema.js';
import type { Identity } from './identity.js';
import { RemoteKeySet, type KeySetLogger } from './remote-jwks.js';

type AuthConfig = Config['auth'];

/** Why a token was refused; goes to the log and the decision record, never to the client. */
export class TokenError extends Error {
  override readonly name = 'TokenError';
  constructor(
    readonly reason: 'invalid' | 'expired' | 'claims',
    message: string,
  ) {
    super(message);
  }
}

export type TokenVerifier = (token: string, startupUser: string) => Promise<Identity>;

function keySource(auth: AuthConfig, logger: KeySetLogger | undefined): Uint8Array | JWTVerifyGetKey {
  if (auth.hs256Secret !== undefined) return new TextEncoder().encode(auth.hs256Secret);
  if (auth.jwksFile !== undefined) return createLocalJWKSet(JSON.parse(readFileSync(auth.jwksFile, 'utf8')));
  if (auth.jwksUrl !== undefined) {
    const keys = new RemoteKeySet(new URL(auth.jwksUrl), {
      refreshMs: JWKS_REFRESH_MS,
      maxStaleMs: auth.jwksMaxStaleSec * 1000,
      minFetchIntervalMs: JWKS_MIN_FETCH_INTERVAL_MS,
      timeoutMs: JWKS_TIMEOUT_MS,
      logger,
    });
    void keys.prefetch();
    return keys.getKey;
  }
  throw new Error('auth has no key source');
}

/** How the identity provider's key set is fetched (remote-jwks.ts): jose's own defaults. */
const JWKS_REFRESH_MS = 10 * 60_000;
const JWKS_MIN_FETCH_INTERVAL_MS = 30_000;
const JWKS_TIMEOUT_MS = 5000;

/**
 * A claim as text. A number is accepted only when it is a safe integer other than -0: JSON.parse
 * has already rounded larger integers (9007199254740993 arrives as …992, another tenant's id), and
 * 1.5, 1e21 or -0 have no single text form that an issuer would mean.
 */
function stringClaim(payload: JWTPayload, name: string): string | undefined {
  const v = payload[name];
  if (typeof v === 'string' && v.length > 0) return v;
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v) && !Object.is(v, -0)) return String(v);
    throw new TokenError(
      'claims',
      `claim "${name}" is a number that is not a safe integer (${v}); send it as a string`,
    );
  }
  return undefined;
}

/**
 * Tokens must expire, and not too far ahead: a token with no `exp`, a lifetime (exp − iat, or
 * exp − now without iat) over auth.maxTokenLifetimeSec, or an `iat` in the future beyond the clock
 * tolerance is refused. `nowSec` is the verification time in seconds.
 */
export function checkTokenLifetime(payload: JWTPayload, auth: AuthConfig, nowSec: number): number {
  const { exp, iat } = payload;
  if (typeof exp !== 'number' || !Number.isFinite(exp))
    throw new TokenError('claims', 'token has no "exp" claim; pgwarden accepts only tokens that expire');
  if (iat !== undefined && (typeof iat !== 'number' || !Number.isFinite(iat)))
    throw new TokenError('claims', 'claim "iat" must be a number');
  if (iat !== undefined && iat > nowSec + auth.clockToleranceSec)
    throw new TokenError('claims', `token issued in the future (iat ${iat}, now ${Math.floor(nowSec)})`);
  const lifetime = exp - (iat ?? nowSec);
  if (lifetime > auth.maxTokenLifetimeSec)
    throw new TokenError(
      'claims',
      `token lifetime of ${Math.round(lifetime)} s exceeds auth.maxTokenLifetimeSec (${auth.maxTokenLifetimeSec} s)`,
    );
  return exp;
}

export function identityFromClaims(payload: JWTPayload, auth: AuthConfig, startupUser: string): Identity {
  const human = stringClaim(payload, auth.claims.human);
  if (human === undefined) throw new TokenError('claims', `token has no "${auth.claims.human}" claim`);
  const tenant = stringClaim(payload, auth.claims.tenant);
  if (tenant === undefined) throw new TokenError('claims', `token has no "${auth.claims.tenant}" claim`);
  const act = payload.act;
  const actor =
    act !== null && typeof act === 'object' && typeof (act as { sub?: unknown }).sub === 'string'
      ? (act as { sub: string }).sub
      : undefined;
  const rawRoles = payload[auth.claims.roles];
  const roles =
    rawRoles === undefined
      ? []
      : Array.isArray(rawRoles) && rawRoles.every((r) => typeof r === 'string')
        ? rawRoles
        : typeof rawRoles === 'string'
          ? rawRoles.split(/[ ,]+/).filter(Boolean)
          : undefined;
  if (roles === undefined)
    throw new TokenError('claims', `claim "${auth.claims.roles}" must be a string array`);
  const identity: Identity = {
    human,
    agent: actor ?? startupUser,
    tenant,
    roles: Object.freeze([...roles]),
    tokenId: stringClaim(payload, auth.claims.tokenId),
    expiresAt: typeof payload.exp === 'number' ? payload.exp : undefined,
  };
  for (const text of [identity.human, identity.agent, identity.tenant, identity.tokenId, ...identity.roles])
    if (text !== undefined && UNPRINTABLE.test(text))
      throw new TokenError(
        'claims',
        `an identity claim holds a control character, a direction control or half a surrogate pair: ${JSON.stringify(text)}`,
      );
  return Object.freeze(identity);
}

/**
 * Characters no name of a human, agent, tenant or role holds, and that would make its records
 * lie or vanish: the store cannot keep NUL (the records went to rejected.ndjson while the
 * statement ran), keeps half a surrogate pair as U+FFFD (verify then reported the record altered,
 * and stopped looking further along that chain), and direction controls display a name as
 * another one (red team, round 33). C0 and C1 controls, DEL, the bidirectional controls, unpaired
 * surrogates, and the invisible characters that make one name display as another (zero-width
 * space, word joiner and invisible operators, byte-order mark; line and paragraph separators):
 * `alice\u200b@acme.test` read as alice in every record (red team, round 46). The zero-width
 * joiner and non-joiner stay: Persian, Indic scripts and emoji need them.
 */
const UNPRINTABLE =
  // eslint-disable-next-line no-control-regex -- control characters are what it looks for
  /[\u0000-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export function createTokenVerifier(auth: AuthConfig, logger?: KeySetLogger): TokenVerifier {
  const key = keySource(auth, logger);
  const algorithms = auth.hs256Secret !== undefined ? ['HS256'] : ['RS256', 'ES256'];
  return async (token, startupUser) => {
    let payload: JWTPayload;
    try {
      const opts = {
        algorithms,
        clockTolerance: auth.clockToleranceSec,
        ...(auth.issuer !== undefined ? { issuer: auth.issuer } : {}),
        ...(auth.audience !== undefined ? { audience: auth.audience } : {}),
      };
      const result =
        key instanceof Uint8Array ? await jwtVerify(token, key, opts) : await jwtVerify(token, key, opts);
      payload = result.payload;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ERR_JWT_EXPIRED') throw new TokenError('expired', 'token expired');
      throw new TokenError('invalid', `token rejected: ${code ?? (err as Error).message}`);
    }
    checkTokenLifetime(payload, auth, Date.now() / 1000);
    return identityFromClaims(payload, auth, startupUser);
  };
}

/** Parses "15m", "2h", "30s", "1d" into seconds. */
export function parseTtl(ttl: string): number {
  const m = /^(\d+)([smhd])$/.exec(ttl);
  if (!m) throw new Error(`invalid ttl "${ttl}" (expected e.g. 30s, 15m, 2h, 1d)`);
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

export interface MintOptions {
  tenant: string;
  human: string;
  agent?: string;
  roles?: readonly string[];
  ttlSeconds: number;
  tokenId?: string;
}

/** Mints an HS256 token with the configured secret, for demos and tests. */
export async function mintToken(auth: AuthConfig, opts: MintOptions): Promise<string> {
  if (auth.hs256Secret === undefined) throw new Error('minting needs auth.hs256Secret');
  if (opts.ttlSeconds > auth.maxTokenLifetimeSec)
    throw new Error(
      `a ttl of ${opts.ttlSeconds} s exceeds auth.maxTokenLifetimeSec (${auth.maxTokenLifetimeSec} s); pgwarden would refuse the token`,
    );
  const claims: JWTPayload = {
    [auth.claims.tenant]: opts.tenant,
    [auth.claims.roles]: [...(opts.roles ?? [])],
  };
  if (opts.agent !== undefined) claims.act = { sub: opts.agent };
  let jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(opts.human)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + opts.ttlSeconds)
    .setJti(opts.tokenId ?? crypto.randomUUID());
  if (auth.issuer !== undefined) jwt = jwt.setIssuer(auth.issuer);
  if (auth.audience !== undefined) jwt = jwt.setAudience(auth.audience);
  return jwt.sign(new TextEncoder().encode(auth.hs256Secret));
}
