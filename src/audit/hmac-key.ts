import { readFileSync } from 'node:fs';
import type { AuditConfig } from './config.js';

/** The chain's HMAC key from `audit.hmacKey` or `audit.hmacKeyFile`; undefined when unkeyed. */
export function resolveHmacKey(audit: AuditConfig): string | undefined {
  if (audit.hmacKey !== undefined) return audit.hmacKey;
  if (audit.hmacKeyFile === undefined) return undefined;
  const key = readFileSync(audit.hmacKeyFile, 'utf8').trim();
  if (key.length < 32)
    throw new Error(`audit.hmacKeyFile ${audit.hmacKeyFile}: the key must be at least 32 characters`);
  return key;
}
