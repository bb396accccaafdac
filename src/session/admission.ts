import type { Config } from '../config/schema.js';
import { PgwardenError } from '../errors/registry.js';
import type { Identity } from '../identity/identity.js';

/** Sessions open now: in all, of the caller's tenant, of the caller's human in that tenant. */
export interface OpenSessions {
  readonly all: number;
  readonly ofTenant: number;
  readonly ofHuman: number;
}

/**
 * Why an authenticated connection may not have a session, or undefined. Each session holds a
 * server connection, and the server has far fewer than limits.maxConnections: one human, or one
 * tenant's humans together, must not take them all.
 */
export function admissionRefusal(
  limits: Config['limits'],
  open: OpenSessions,
  identity: Identity,
): PgwardenError | undefined {
  if (open.all >= limits.maxConnections) return new PgwardenError('PGW_TOO_MANY_CONNECTIONS');
  if (open.ofHuman >= limits.maxSessionsPerHuman)
    return new PgwardenError('PGW_TOO_MANY_CONNECTIONS', {
      message: `too many connections for ${identity.human} in tenant ${identity.tenant}`,
      detail: `limits.maxSessionsPerHuman is ${limits.maxSessionsPerHuman}`,
      hint: 'Close a session of this human, or reuse one.',
    });
  if (open.ofTenant >= limits.maxSessionsPerTenant)
    return new PgwardenError('PGW_TOO_MANY_CONNECTIONS', {
      message: `too many connections for tenant ${identity.tenant}`,
      detail: `limits.maxSessionsPerTenant is ${limits.maxSessionsPerTenant}`,
      hint: "Close a session of this tenant's agents, or reuse one.",
    });
  return undefined;
}
