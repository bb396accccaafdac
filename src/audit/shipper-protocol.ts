import type { ShipperStats } from './shipper.js';

/** What the main thread gives the shipper's worker thread at start. */
export interface ShipperWorkerData {
  readonly storeUrl: string;
  /** Set when the store is the default database on the upstream server: created if missing. */
  readonly create: { readonly adminUrl: string; readonly database: string } | null;
  readonly ownDir: string;
  readonly spoolRoot: string;
  readonly batchSize: number;
  readonly pollIntervalMs: number;
  readonly maxRetryDelayMs: number;
  readonly retentionDays: number;
  /** audit.hmacKey: the store's heads, anchors and registry entries are keyed with it. */
  readonly hmacKey: string | null;
  readonly retentionCheckIntervalMs: number;
  readonly sqlTextIndex: boolean;
  /** NDJSON target written from the spool by this thread: a path, "stdout" or "off". */
  readonly ndjson: string;
  /** The spool's bound; the NDJSON output may not hold back more than this on disk. */
  readonly spoolMaxBytes: number;
}

export type ToShipper =
  | { readonly type: 'poke' }
  /** Open the NDJSON file again by its name: logrotate has moved it away. */
  | { readonly type: 'reopen' }
  | {
      readonly type: 'drain';
      readonly id: number;
      readonly timeoutMs: number;
      readonly giveUpOnFailure: boolean;
    }
  | { readonly type: 'stop' };

export type FromShipper =
  | { readonly type: 'delivered'; readonly bytes: number; readonly stats: ShipperStats }
  | { readonly type: 'stats'; readonly stats: ShipperStats }
  | { readonly type: 'drained'; readonly id: number; readonly ok: boolean }
  | {
      readonly type: 'log';
      readonly level: 'info' | 'warn' | 'error';
      readonly obj: Record<string, unknown>;
      readonly msg: string;
    }
  | { readonly type: 'stopped' };
