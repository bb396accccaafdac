import { readFileSync } from 'node:fs';
import { loadConfigFile } from '../config/load.js';
import type { DecisionFilter } from './filter.js';
import { resolveHmacKey } from './hmac-key.js';
import {
  AuditReader,
  type AggregateBy,
  type DecisionView,
  type Interval,
  type Page,
} from './store-reader.js';
import { storeUrl, upstreamUrlFromConfig } from './store-url.js';
import { verifyAll, type InstanceReport } from './verify.js';

/** Where `pgwarden log` and `pgwarden audit verify` read: the store directly, or the HTTP API. */
export interface DecisionSource {
  search(f: DecisionFilter, limit: number, cursor?: string): Promise<Page>;
  session(id: string): Promise<DecisionView[]>;
  aggregate(by: AggregateBy | 'time', f: DecisionFilter, interval: Interval): Promise<unknown[]>;
  verify(instance?: string): Promise<InstanceReport[]>;
  close(): Promise<void>;
}

export class UsageError extends Error {}

export interface SourceOptions {
  config?: string | undefined;
  databaseUrl?: string | undefined;
  apiUrl?: string | undefined;
  token?: string | undefined;
  tokenFile?: string | undefined;
  hmacKeyFile?: string | undefined;
}

function dbSource(url: string, hmacKey: string | undefined, retentionDays?: number): DecisionSource {
  const reader = new AuditReader(url, 2);
  return {
    search: (f, limit, cursor) => reader.search(f, { limit, cursor }),
    session: (id) => reader.wholeSession(id),
    aggregate: (by, f, interval) => (by === 'time' ? reader.overTime(interval, f) : reader.aggregate(by, f)),
    // The config's retention period, when there is one: an anchor newer than it allows is reported.
    verify: (instance) =>
      verifyAll(reader.pool, hmacKey, instance, retentionDays === undefined ? {} : { retentionDays }),
    close: () => reader.close(),
  };
}

function apiSource(base: string, token: string): DecisionSource {
  const call = async <T>(path: string, params: Record<string, unknown> = {}): Promise<T> => {
    const u = new URL(path, base.endsWith('/') ? base : `${base}/`);
    for (const [k, v] of Object.entries(params))
      if (v !== undefined && v !== '') u.searchParams.set(k, String(v));
    const res = await fetch(u, { headers: { authorization: `Bearer ${token}` } });
    if (res.status === 404) return { items: [] } as T;
    if (!res.ok) throw new Error(`${u.pathname}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  return {
    search: (f, limit, cursor) => call<Page>('api/v1/decisions', { ...f, limit, cursor }),
    session: async (id) => {
      const all: DecisionView[] = [];
      let after: number | undefined;
      for (;;) {
        const page = await call<{ items: DecisionView[]; next?: number | null }>(
          `api/v1/sessions/${encodeURIComponent(id)}`,
          { after, limit: 200 },
        );
        all.push(...page.items);
        if (page.next === undefined || page.next === null) return all;
        after = page.next;
      }
    },
    aggregate: async (by, f, interval) =>
      (await call<{ buckets: unknown[] }>('api/v1/aggregates', { ...f, by, interval })).buckets,
    verify: async (instance) =>
      (await call<{ instances: InstanceReport[] }>('api/v1/verify', { instance })).instances,
    close: async () => {},
  };
}

/**
 * --api-url with --token (or --token-file, or PGWARDEN_API_TOKEN: a token on the command line is
 * visible in `ps`), else --database-url, else the store named by --config.
 */
export function openSource(o: SourceOptions, env: NodeJS.ProcessEnv = process.env): DecisionSource {
  const hmacFromFile = o.hmacKeyFile ? readFileSync(o.hmacKeyFile, 'utf8').trim() : undefined;
  if (o.apiUrl) {
    const token =
      o.token ?? (o.tokenFile ? readFileSync(o.tokenFile, 'utf8').trim() : env.PGWARDEN_API_TOKEN);
    if (!token) throw new UsageError('--api-url needs --token, --token-file or PGWARDEN_API_TOKEN');
    return apiSource(o.apiUrl, token);
  }
  if (o.databaseUrl) return dbSource(o.databaseUrl, hmacFromFile);
  if (o.config) {
    const config = loadConfigFile(o.config, env);
    return dbSource(
      storeUrl(config.audit, upstreamUrlFromConfig(config)),
      hmacFromFile ?? resolveHmacKey(config.audit),
      config.audit.store.retentionDays,
    );
  }
  throw new UsageError('give --config <file>, --database-url <dsn> or --api-url <url>');
}

export const sourceArgs = {
  config: { type: 'string' },
  'database-url': { type: 'string' },
  'api-url': { type: 'string' },
  token: { type: 'string' },
  'token-file': { type: 'string' },
  'hmac-key-file': { type: 'string' },
} as const;

export function sourceOptions(v: Record<string, unknown>): SourceOptions {
  return {
    config: v.config as string | undefined,
    databaseUrl: v['database-url'] as string | undefined,
    apiUrl: v['api-url'] as string | undefined,
    token: v.token as string | undefined,
    tokenFile: v['token-file'] as string | undefined,
    hmacKeyFile: v['hmac-key-file'] as string | undefined,
  };
}

/**
 * Opens a command's decision source; a usage problem is written to stderr with the command's
 * usage and gives undefined (the command exits 2). Other errors propagate.
 */
export function openOrExplain(
  open: () => DecisionSource,
  usage: string,
  stderr: (s: string) => void,
): DecisionSource | undefined {
  try {
    return open();
  } catch (err) {
    if (err instanceof UsageError) {
      stderr(`${err.message}\n${usage}`);
      return undefined;
    }
    throw err;
  }
}
