import { connect as netConnect, type Socket } from 'node:net';
import { serialize } from 'pg-protocol';
import { Parser } from 'pg-protocol/dist/parser.js';
import * as sasl from 'pg/lib/crypto/sasl.js';
import { postgresMd5PasswordHash } from 'pg/lib/crypto/utils.js';
import { PgwardenError } from '../errors/registry.js';

export interface UpstreamOptions {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password?: string | undefined;
  readonly connectTimeoutMs: number;
  /** Startup parameters (GUCs) that pin the session, e.g. client_encoding. */
  readonly parameters: Readonly<Record<string, string>>;
}

export interface UpstreamConnection {
  readonly socket: Socket;
  /** ParameterStatus values the server reported during startup. */
  readonly parameters: ReadonlyMap<string, string>;
  readonly processId: number;
  readonly secretKey: number;
}

type Msg = { name: string } & Record<string, unknown>;

/**
 * Opens and authenticates a connection to PostgreSQL with pgwarden's own service credential
 * (SCRAM-SHA-256, md5, cleartext or trust) and waits for the first ReadyForQuery.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */
export function connectUpstream(opts: UpstreamOptions): Promise<UpstreamConnection> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: opts.host, port: opts.port });
    socket.setNoDelay(true);
    const parser = new Parser();
    const parameters = new Map<string, string>();
    let processId = 0;
    let secretKey = 0;
    let scram: ReturnType<typeof sasl.startSession> | undefined;
    let settled = false;

    const fail = (why: string, cause?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(new PgwardenError('PGW_UPSTREAM_UNAVAILABLE', { detail: why, cause }));
    };
    const timer = setTimeout(
      () => fail(`no answer from ${opts.host}:${opts.port} within ${opts.connectTimeoutMs} ms`),
      opts.connectTimeoutMs,
    );

    const needPassword = (): string => {
      if (opts.password === undefined)
        throw new Error('the server asks for a password and none is configured');
      return opts.password;
    };

    const onMessage = async (msg: Msg): Promise<void> => {
      switch (msg.name) {
        case 'authenticationCleartextPassword':
          socket.write(serialize.password(needPassword()));
          return;
        case 'authenticationMD5Password':
          socket.write(
            serialize.password(await postgresMd5PasswordHash(opts.user, needPassword(), msg.salt as Buffer)),
          );
          return;
        case 'authenticationSASL':
          scram = sasl.startSession(msg.mechanisms as string[]);
          socket.write(serialize.sendSASLInitialResponseMessage(scram.mechanism, scram.response));
          return;
        case 'authenticationSASLContinue':
          if (!scram) throw new Error('SASLContinue before SASL');
          await sasl.continueSession(scram, needPassword(), msg.data as string);
          socket.write(serialize.sendSCRAMClientFinalMessage(scram.response));
          return;
        case 'authenticationSASLFinal':
          if (!scram) throw new Error('SASLFinal before SASL');
          sasl.finalizeSession(scram, msg.data as string);
          return;
        case 'authenticationOk':
        case 'notice':
          return;
        case 'parameterStatus':
          parameters.set(msg.parameterName as string, msg.parameterValue as string);
          return;
        case 'backendKeyData':
          processId = msg.processID as number;
          secretKey = msg.secretKey as number;
          return;
        case 'readyForQuery':
          settled = true;
          clearTimeout(timer);
          socket.removeAllListeners('data');
          socket.removeAllListeners('error');
          socket.removeAllListeners('close');
          resolve({ socket, parameters, processId, secretKey });
          return;
        case 'error':
          fail(`the server refused the connection: ${(msg as unknown as Error).message}`, msg);
          return;
        default:
          fail(`unexpected ${msg.name} during startup`);
      }
    };

    // Authentication steps are awaited in order: a later message must not overtake an earlier one.
    let chain = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      parser.parse(chunk, (msg) => {
        chain = chain.then(() => onMessage(msg)).catch((err: unknown) => fail((err as Error).message, err));
      });
    });
    socket.on('error', (err) => fail(err.message, err));
    socket.on('close', () => fail('the server closed the connection during startup'));
    socket.once('connect', () => {
      socket.write(serialize.startup({ user: opts.user, database: opts.database, ...opts.parameters }));
    });
  });
}

/** Sends a CancelRequest for an upstream backend; best effort, as in libpq. */
export function cancelUpstream(host: string, port: number, processId: number, secretKey: number): void {
  const s = netConnect({ host, port });
  s.on('error', () => s.destroy());
  s.once('connect', () => s.end(serialize.cancel(processId, secretKey)));
}
