import { createHash, timingSafeEqual } from 'node:crypto';
import type { AuditConfig } from '../audit/config.js';

export interface Principal {
  readonly name: string;
  readonly roles: readonly string[];
}

export type AuthResult =
  | { readonly ok: true; readonly principal: Principal }
  | { readonly ok: false; readonly status: 401 | 403; readonly reason: string };

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * Bearer tokens for responders, from `audit.api.tokens`. Only SHA-256 digests are kept and
 * compared in constant time. Agents' JWTs are never accepted: they are not in this list.
 */
export function tokenAuthenticator(api: AuditConfig['api']): (header: string | undefined) => AuthResult {
  const known = api.tokens.map((t) => ({
    name: t.name,
    roles: t.roles,
    digest: t.sha256 !== undefined ? Buffer.from(t.sha256, 'hex') : sha256(t.token as string),
  }));
  return (header) => {
    const m = /^Bearer ([\x21-\x7e]+)$/.exec(header ?? '');
    if (!m) return { ok: false, status: 401, reason: 'missing bearer token' };
    const digest = sha256(m[1] as string);
    // Every token is compared, so the time taken does not tell which one was close.
    let found: (typeof known)[number] | undefined;
    for (const k of known) if (timingSafeEqual(k.digest, digest) && !found) found = k;
    if (!found) return { ok: false, status: 401, reason: 'unknown token' };
    if (!found.roles.includes(api.responderRole)) {
      return { ok: false, status: 403, reason: `token ${found.name} lacks role ${api.responderRole}` };
    }
    return { ok: true, principal: { name: found.name, roles: found.roles } };
  };
}
