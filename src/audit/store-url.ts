import type { Config } from '../config/schema.js';
import type { AuditConfig } from './config.js';

/** The store's DSN: `audit.store.url`, else the audit database on the upstream server. */
export function storeUrl(audit: AuditConfig, upstreamUrl: string): string {
  if (audit.store.url) return audit.store.url;
  const u = new URL(upstreamUrl);
  u.pathname = `/${audit.store.database}`;
  return u.toString();
}

/** The upstream DSN built from a config file (for the CLI, which has no running proxy). */
export function upstreamUrlFromConfig(config: Config): string {
  const u = new URL('postgres://localhost');
  u.hostname = config.upstream.host;
  u.port = String(config.upstream.port);
  u.username = config.upstream.user;
  if (config.upstream.password !== undefined) u.password = config.upstream.password;
  u.pathname = `/${config.upstream.database}`;
  return u.toString();
}

/** A DSN for logs: the password never leaves this function. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable DSN)';
  }
}
