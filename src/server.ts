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
import * as be from './protocol/backend-encoder.js';
import { CancelRegistry } from './session/cancel-registry.js';
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
  /** Open client sessions. */
  sessionCount(): number;
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

/** Starts the proxy listener. Each connection becomes a Session with its own upstream connection. */
export async function startPgwarden(opts: PgwardenOptions): Promise<RunningPgwarden> {
  const { config } = opts;
  const logger = opts.logger ?? pino({ level: config.logLevel });
  const instanceId = opts.instanceId ?? randomUUID();
  const sessions = new Set<Session>();
  const cancels = new CancelRegistry<Session>();
  let accepting = true;
  const deps = {
    config,
    judge: opts.judge,
    sink: opts.sink,
    verifyToken: opts.verifyToken ?? createTokenVerifier(config.auth),
    cancels,
    tls: tlsContext(config),
    instanceId,
    logger,
    accepting: () => accepting,
  };

  const onConnection = (socket: Socket): void => {
    if (sessions.size >= config.limits.maxConnections) {
      const e = new PgwardenError('PGW_TOO_MANY_CONNECTIONS');
      socket.on('error', () => socket.destroy());
      socket.end(be.errorResponse({ severity: 'FATAL', sqlstate: e.sqlstate, message: e.message }));
      logger.warn({ event: 'connection_refused', reason: 'max_connections', client: socket.remoteAddress });
      return;
    }
    const session = new Session(socket, deps);
    sessions.add(session);
    socket.once('close', () => sessions.delete(session));
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
    close: async () => {
      accepting = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.fatal(new PgwardenError('PGW_SHUTTING_DOWN'));
      await closed;
    },
  };
}
