import { z } from 'zod';

/**
 * The decision log's configuration (the `audit` key of the pgwarden config).
 * Documented in docs/decision-log.md; every key has a default so `audit: {}` is a working log.
 */
const store = z
  .object({
    /** A DSN for the audit store. Default: the `database` below on the upstream server. */
    url: z.string().min(1).optional(),
    /** Database created on the upstream server (with the service credential) when `url` is unset. */
    database: z
      .string()
      .regex(/^[a-z_][a-z0-9_]*$/, 'a plain lower-case identifier')
      .default('pgwarden_audit'),
    /** Spool entries per store transaction. */
    batchSize: z.number().int().min(1).max(10_000).default(1000),
    /** How long the shipper idles when the spool is empty. */
    pollIntervalMs: z.number().int().min(5).default(100),
    /** Back-off ceiling while the store is down. */
    maxRetryDelayMs: z.number().int().min(10).default(5000),
    /** Records older than this are deleted from the store; 0 keeps everything. */
    retentionDays: z.number().min(0).default(90),
    retentionCheckIntervalMs: z.number().int().min(1000).default(3_600_000),
    /**
     * A trigram index for SQL text search (needs pg_trgm). It is about 40% of the store's server
     * CPU per record (bench/audit-append.ts --store); without it SQL search scans, within the
     * other filters.
     */
    sqlTextIndex: z.boolean().default(true),
  })
  .strict();

const spool = z
  .object({
    /** One sub-directory per pgwarden instance. Put it on a local disk, not tmpfs. */
    dir: z.string().min(1).default('.pgwarden/spool'),
    /** Unshipped bytes allowed before `onFull` applies. */
    maxBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .default(512 * 1024 * 1024),
    /**
     * Unshipped bytes one tenant's records may hold (tokenless records count as one tenant), so
     * a tenant whose statements outrun the store cannot fill the spool for everyone; default a
     * quarter of maxBytes.
     */
    maxBytesPerTenant: z
      .number()
      .int()
      .min(64 * 1024)
      .optional(),
    segmentBytes: z
      .number()
      .int()
      .min(4096)
      .default(16 * 1024 * 1024),
    /**
     * Records are written to the kernel before the statement is forwarded (survives kill -9); fsync
     * to the disk runs on this interval (what a machine crash may lose). 0 fsyncs every record.
     */
    fsyncIntervalMs: z.number().int().min(0).default(100),
    /** Spool full: refuse statements (PGW_AUDIT_UNAVAILABLE) or run them with only an NDJSON line. */
    onFull: z.enum(['refuse', 'ndjson-only']).default('refuse'),
  })
  .strict();

const apiToken = z
  .object({
    /** Who holds the token; shown in the API's log lines, never the token. */
    name: z.string().min(1),
    /** The bearer token itself (at least 32 characters) ... */
    token: z.string().min(32, 'API tokens must be at least 32 characters').optional(),
    /** ... or, better, its SHA-256 in hex so the config holds no secret. */
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lower-case hex digits')
      .optional(),
    roles: z.array(z.string().min(1)).default([]),
  })
  .strict()
  .refine((t) => (t.token === undefined) !== (t.sha256 === undefined), {
    message: 'an API token needs exactly one of token or sha256',
  });

const api = z
  .object({
    enabled: z.boolean().default(false),
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(6480),
    /** Role a bearer token must carry; agents' JWTs are never accepted here. */
    responderRole: z.string().min(1).default('responder'),
    tokens: z.array(apiToken).default([]),
    /** Rows per page when a search gives no limit, and the ceiling of one export. */
    pageSize: z.number().int().min(1).max(1000).default(50),
    maxExportRows: z.number().int().min(1).default(1_000_000),
  })
  .strict();

export const auditConfigSchema = z
  .object({
    /** NDJSON decision lines: a file path, "stdout", or "off". */
    ndjson: z.string().default('stdout'),
    redactParameters: z.boolean().default(true),
    /** false: NDJSON only, no spool and no store (for comparisons; statements are not held back). */
    durable: z.boolean().default(true),
    /** Keys each chain link with HMAC-SHA256, so a rewritten chain cannot be recomputed. */
    hmacKey: z.string().min(32, 'hmacKey must be at least 32 characters').optional(),
    hmacKeyFile: z.string().optional(),
    store: store.default(store.parse({})),
    spool: spool.default(spool.parse({})),
    api: api.default(api.parse({})),
  })
  .strict()
  .refine((a) => !(a.hmacKey !== undefined && a.hmacKeyFile !== undefined), {
    message: 'give hmacKey or hmacKeyFile, not both',
  });

export type AuditConfig = z.infer<typeof auditConfigSchema>;
export type AuditConfigInput = z.input<typeof auditConfigSchema>;
