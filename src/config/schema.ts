import { z } from 'zod';
import { auditConfigSchema } from '../audit/config.js';

/**
 * The whole of pgwarden's configuration. Strict: an unknown key is an error, so a typo never
 * silently leaves a default in force. Documented in docs/config.md.
 */
const upstream = z
  .object({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(1).max(65535).default(5432),
    database: z.string().min(1),
    user: z.string().min(1),
    password: z.string().optional(),
    connectTimeoutMs: z.number().int().positive().default(5000),
  })
  .strict();

const claims = z
  .object({
    human: z.string().default('sub'),
    tenant: z.string().default('tenant'),
    roles: z.string().default('roles'),
    tokenId: z.string().default('jti'),
  })
  .strict();

const auth = z
  .object({
    hs256Secret: z.string().min(32, 'hs256Secret must be at least 32 characters').optional(),
    jwksFile: z.string().optional(),
    jwksUrl: z.url().optional(),
    /** How long the last key set fetched from jwksUrl is used while the URL fails. */
    jwksMaxStaleSec: z.number().int().positive().default(86_400),
    issuer: z.string().optional(),
    audience: z.string().optional(),
    claims: claims.default(claims.parse({})),
    failureDelayMs: z.number().int().min(0).default(250),
    clockToleranceSec: z.number().int().min(0).default(5),
    /** Longest a token may be valid: exp − iat (or exp − now without iat). Tokens need an exp. */
    maxTokenLifetimeSec: z.number().int().positive().default(86_400),
  })
  .strict()
  .refine((a) => a.hs256Secret !== undefined || a.jwksFile !== undefined || a.jwksUrl !== undefined, {
    message: 'auth needs one of hs256Secret, jwksFile or jwksUrl',
  })
  // With two key sources only one would be used, silently: refuse rather than guess.
  .refine((a) => [a.hs256Secret, a.jwksFile, a.jwksUrl].filter((k) => k !== undefined).length <= 1, {
    message:
      'auth has more than one key source: hs256Secret (or PGWARDEN_HS256_SECRET), jwksFile and jwksUrl ' +
      'exclude each other; keep exactly one',
  });

const tls = z
  .object({
    certFile: z.string().optional(),
    keyFile: z.string().optional(),
    /** Where a client may skip TLS: only loopback addresses (default), anywhere, or nowhere. */
    allowPlaintext: z.enum(['loopback', 'always', 'never']).default('loopback'),
  })
  .strict();

const limits = z
  .object({
    maxMessageBytes: z
      .number()
      .int()
      .min(1024)
      .default(16 * 1024 * 1024),
    /** The longest SQL text pgwarden judges; longer ones are refused (54000). */
    maxQueryBytes: z
      .number()
      .int()
      .min(64)
      .default(128 * 1024),
    /**
     * Statements the decision caches do not hold are judged on the judge thread, not on the event
     * loop every session shares: judging costs from tens of microseconds to 10 µs per byte
     * (bench/judge.ts), so an agent sending new statements without pause would hold up everyone
     * else. false: everything is judged on the event loop.
     */
    judgeThread: z.boolean().default(true),
    /** With judgeThread: only cache misses longer than this go to the thread (0: all of them). */
    judgeOffThreadBytes: z.number().int().min(0).default(0),
    /**
     * With judgeThread: judging one statement may take this long; beyond it the statement is
     * refused (54001) and the thread replaced, so one pathological statement holds no one for long.
     */
    judgeTimeoutMs: z.number().int().min(100).default(3000),
    /**
     * With judgeThread: threads judging at once. A tenant holds at most all but one of them, so
     * another tenant's new statement does not wait for one slow to judge.
     */
    judgeThreadCount: z.number().int().min(1).max(64).default(2),
    /**
     * Prepared statements, portals and cursors one session may hold (pgwarden keeps each one's
     * judgement); one more is refused (53400) until the session closes some.
     */
    maxNamesPerSession: z.number().int().positive().default(10_000),
    /** Statements one query string may hold; more are refused before any is judged. */
    maxStatementsPerQuery: z.number().int().positive().default(1000),
    maxConnections: z.number().int().positive().default(1000),
    /**
     * Sessions one human of a tenant may hold at once, across all their agents and tokens: each
     * holds a server connection, and the server has far fewer than maxConnections.
     */
    maxSessionsPerHuman: z.number().int().positive().default(20),
    /** Sessions all humans of one tenant may hold at once (see maxSessionsPerHuman). */
    maxSessionsPerTenant: z.number().int().positive().default(50),
    /**
     * Until a client has authenticated, its messages may be at most this large (a token fits
     * easily); a tokenless client cannot make pgwarden buffer a maxMessageBytes message.
     */
    maxStartupMessageBytes: z
      .number()
      .int()
      .min(1024)
      .default(64 * 1024),
    /** Connections still in startup or authentication; counted apart from maxConnections. */
    maxStartupConnections: z.number().int().positive().default(64),
    /**
     * Of those, from one client address (an IPv4 address, an IPv6 /64), so one host cannot hold
     * the whole startup pool and keep everyone else from logging in.
     */
    maxStartupConnectionsPerAddress: z.number().int().positive().default(16),
    startupTimeoutMs: z.number().int().positive().default(10_000),
    idleTimeoutMs: z.number().int().min(0).default(0),
  })
  .strict();

const session = z
  .object({
    searchPath: z.string().default('public'),
    statementTimeoutMs: z.number().int().min(0).default(30_000),
  })
  .strict();

export const configSchema = z
  .object({
    listen: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(6432),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 6432 }),
    upstream,
    auth,
    tls: tls.default(tls.parse({})),
    limits: limits.default(limits.parse({})),
    session: session.default(session.parse({})),
    rules: z
      .object({ paths: z.array(z.string()).min(1).default(['rules']) })
      .strict()
      .default({ paths: ['rules'] }),
    audit: auditConfigSchema.default(auditConfigSchema.parse({})),
    /** Names this pgwarden in decision records and its hash chain; default `<hostname>:<listen.port>`. */
    instanceId: z.string().min(1).optional(),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict();

export type Config = Readonly<z.infer<typeof configSchema>>;
export type ConfigInput = z.input<typeof configSchema>;
