import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';
import { pino, type Logger } from 'pino';
import type { DecisionSink } from './audit/record.js';
import type { Config } from './config/schema.js';
import { PgwardenError } from './errors/registry.js';
import { createTokenVerifier, type TokenVerifier } from './identity/token.js';
import type { Judge } from './policy/verdict.js';
import { CancelRegistry } from './session/cancel-registry.js';
import { admissionRefusal } from './session/admission.js';
import { addressKey } from './session/client-address.js';
import { Session } from './session/session.js';

export interface PgwardenOptions {
  readonly config: Config;
  readonly judge: Judge;
  readonly sink: DecisionSink;
  readonly logger?: Logger;
  readonly verifyToken?: TokenVerifier;
  readonly instanceId?: string;
}

export interface RunningPgwarden {
  readonly host: string;
  readonly port: number;
  readonly instanceId: string;
  /** Open authenticated client sessions. */
  sessionCount(): number;
  /** Connections still in startup or authentication. */
  startupCount(): number;
  /** Stops accepting, ends open sessions with 57P01, closes the listener. */
  close(): Promise<void>;
}

function tlsContext(config: Config): SecureContext | undefined {
  const { certFile, keyFile } = config.tls;
  if (!certFile || !keyFile) return undefined;
  return createSecureContext({
    cert: readFileSync(certFile),
    key: readFileSync(keyFile),
    minVersion: 'TLSv1.2',
  });
}

/** How long close() lets clients take their FATAL before their sockets are destroyed. */
const SHUTDOWN_GRACE_MS = 2000;

/** Starts the proxy listener. Each connection becomes a Session with its own upstream connection. */
export async function startPgwarden(opts: PgwardenOptions): Promise<RunningPgwarden> {
  const { config } = opts;
  const logger = opts.logger ?? pino({ level: config.logLevel });
  const instanceId = opts.instanceId ?? randomUUID();
  /** Authenticated sessions (limits.maxConnections). */
  const sessions = new Set<Session>();
  /** Connections that have not yet verified a token (limits.maxStartupConnections). */
  const starting = new Set<Session>();
  /** Connections in startup per client address, oldest first (limits.maxStartupConnectionsPerAddress). */
  const startingFrom = new Map<string, Map<Socket, () => void>>();
  /** All connections in startup, oldest first, each with the function that evicts it. */
  const startupOrder = new Map<Socket, () => void>();
  /** Authenticated sessions per tenant and per human of a tenant (limits.maxSessionsPer...). */
  const sessionsOf = new Map<string, number>();
  let startupRefusals = 0;
  let evictions = 0;
  const cancels = new CancelRegistry<Session>();
  let accepting = true;
  const deps = {
    config,
    judge: opts.judge,
    sink: opts.sink,
    verifyToken: opts.verifyToken ?? createTokenVerifier(config.auth, logger),
    cancels,
    tls: tlsContext(config),
    instanceId,
    logger,
    accepting: () => accepting,
  };

  /** Every client socket, so close() can end the ones a client never closes. */
  const sockets = new Set<Socket>();
  const onConnection = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // limits.maxConnections is checked when a session is admitted, after its token (admit below):
    // refused here, before its first message, a CancelRequest could not stop a query while
    // pgwarden was full (PostgreSQL takes cancels whatever max_connections says; red team, round
    // 46), and a client without a token learnt how full pgwarden was.
    // Connections without a verified token have their own, smaller pool, so clients that never
    // authenticate cannot take the session slots. Before its startup packet a client could not
    // read an answer (it may be expecting a TLS handshake): it is closed without one.
    const from = addressKey(socket.remoteAddress);
    const mine = startingFrom.get(from)?.size ?? 0;
    let full: string | undefined;
    if (mine >= config.limits.maxStartupConnectionsPerAddress) full = 'max_startup_connections_per_address';
    else if (starting.size >= config.limits.maxStartupConnections) {
      // A full pool makes room for the newcomer: it closes the oldest connection of the address
      // holding most of the pool if that holds at least two more than this one's, else the
      // oldest of all. A login takes milliseconds, so the oldest are the ones that stall:
      // silent connections from any number of hosts cannot keep others out unless they arrive
      // faster than the pool turns over during one login (thousands a second).
      const busiest = mostInStartup(startingFrom);
      const evict =
        busiest && busiest.size > mine + 1
          ? busiest.values().next().value
          : startupOrder.values().next().value;
      if (evict) {
        evictions++;
        evict();
      } else full = 'max_startup_connections';
    }
    if (full) {
      socket.on('error', () => undefined);
      socket.destroy();
      startupRefusals++;
      // One log line per burst, not one per refused connection.
      if (startupRefusals === 1)
        logger.warn(
          { event: 'connection_refused', reason: full, client: socket.remoteAddress },
          'too many connections in startup; closing new ones',
        );
      return;
    }
    let state: 'startup' | 'session' | 'ended' = 'startup';
    /** The counts this session is in (its tenant, its human), once admitted. */
    let counted: readonly string[] = [];
    const leaveStartup = (): void => {
      if (!starting.delete(session)) return;
      startupOrder.delete(socket);
      const same = startingFrom.get(from);
      same?.delete(socket);
      if (same?.size === 0) startingFrom.delete(from);
    };
    const session: Session = new Session(socket, {
      ...deps,
      admit: (identity) => {
        if (state !== 'startup') return new PgwardenError('PGW_TOO_MANY_CONNECTIONS');
        leaveStartup();
        const tenantKey = `tenant\0${identity.tenant}`;
        const humanKey = `human\0${identity.tenant}\0${identity.human}`;
        const open = {
          all: sessions.size,
          ofTenant: sessionsOf.get(tenantKey) ?? 0,
          ofHuman: sessionsOf.get(humanKey) ?? 0,
        };
        const refused = admissionRefusal(config.limits, open, identity);
        if (refused) {
          state = 'ended';
          return refused;
        }
        state = 'session';
        sessions.add(session);
        counted = [tenantKey, humanKey];
        for (const k of counted) sessionsOf.set(k, (sessionsOf.get(k) ?? 0) + 1);
        return undefined;
      },
    });
    starting.add(session);
    let same = startingFrom.get(from);
    if (!same) startingFrom.set(from, (same = new Map()));
    const evict = (): void => {
      // Out of the counts now, not when the socket's close event comes: a burst of newcomers in
      // one turn must not all pick this one.
      leaveStartup();
      state = 'ended';
      socket.destroy();
    };
    same.set(socket, evict);
    startupOrder.set(socket, evict);
    socket.once('close', () => {
      leaveStartup();
      // A session whose client left keeps its place until the server has answered what it sent.
      session.whenEnded(() => {
        if (sessions.delete(session))
          for (const k of counted) {
            const n = (sessionsOf.get(k) ?? 1) - 1;
            if (n > 0) sessionsOf.set(k, n);
            else sessionsOf.delete(k);
          }
      });
      state = 'ended';
      if (starting.size === 0 && (startupRefusals > 0 || evictions > 0)) {
        logger.warn({ event: 'startup_connections_refused', count: startupRefusals, evicted: evictions });
        startupRefusals = 0;
        evictions = 0;
      }
    });
    void session.run();
  };

  const server: Server = createServer({ noDelay: true }, onConnection);
  server.on('error', (err) => logger.error({ event: 'listener_error', err: err.message }));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = addr && typeof addr === 'object' ? addr.port : config.listen.port;
  logger.info({ event: 'listening', host: config.listen.host, port, instanceId }, 'pgwarden listening');

  return {
    host: config.listen.host,
    port,
    instanceId,
    sessionCount: () => sessions.size,
    startupCount: () => starting.size,
    close: async () => {
      accepting = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of [...starting, ...sessions]) s.fatal(new PgwardenError('PGW_SHUTTING_DOWN'));
      // A client that never closes its side (or was refused before a session existed) would keep
      // the listener from closing: after a grace period its socket is destroyed.
      const grace = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, SHUTDOWN_GRACE_MS);
      await closed;
      clearTimeout(grace);
    },
  };
}

/**
 * Of the connections in startup per address (each with the function that evicts it), those of the
 * address with most, in the order they came.
 */
function mostInStartup(
  startingFrom: ReadonlyMap<string, ReadonlyMap<Socket, () => void>>,
): ReadonlyMap<Socket, () => void> | undefined {
  let busiest: ReadonlyMap<Socket, () => void> | undefined;
  for (const same of startingFrom.values()) if (!busiest || same.size > busiest.size) busiest = same;
  return busiest;
}
