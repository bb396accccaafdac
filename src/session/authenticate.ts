import type { Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { Config } from '../config/schema.js';
import { PgwardenError } from '../errors/registry.js';
import type { Identity } from '../identity/identity.js';
import { TokenError, type TokenVerifier } from '../identity/token.js';
import * as be from '../protocol/backend-encoder.js';
import { Frontend } from '../protocol/codes.js';
import type { FrontendDecoder, FrontendMessage } from '../protocol/frontend-decoder.js';
import * as fm from '../protocol/frontend-messages.js';
import { isLoopback } from './client-address.js';
import type { MessageReader } from './message-reader.js';
import { checkClientParameters, readStartup, type ClientParameters } from './startup.js';

export interface AuthenticateDeps {
  readonly config: Config;
  readonly tls: SecureContext | undefined;
  readonly verifyToken: TokenVerifier;
  /** False once pgwarden is shutting down. */
  readonly accepting: () => boolean;
}

export interface AuthenticateHooks {
  /**
   * The TLS socket, as soon as the client's SSLRequest is accepted: whatever fails from then on
   * (a second SSLRequest, a bad startup packet, the startup timeout) is answered through it, not
   * in plaintext under the client's TLS session (red team, round 46).
   */
  secured(tlsSocket: Socket): void;
  /** The client's socket (the TLS one once upgraded) and its decoder, before anything can fail. */
  connected(client: Socket, decoder: FrontendDecoder): void;
  /** The client's startup parameters, before its password is read. */
  parameters(params: ClientParameters): void;
  /** Records and answers an authentication failure; never returns. */
  failed(
    params: ClientParameters,
    reason: string,
    extra?: { detail?: string; hint?: string },
  ): Promise<never>;
}

export type Authentication =
  | { readonly kind: 'cancel'; readonly processId: number; readonly secretKey: Buffer }
  | {
      readonly kind: 'authenticated';
      readonly reader: MessageReader;
      readonly params: ClientParameters;
      readonly identity: Identity;
    };

/**
 * A connection's startup phase up to a verified token: encryption requests and the startup packet
 * (startup.ts), where plaintext is allowed, the client's parameters, then the password message,
 * which carries the token. Every failure of the token, or of the database named, is answered alike
 * through hooks.failed.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */
export async function authenticate(
  socket: Socket,
  deps: AuthenticateDeps,
  hooks: AuthenticateHooks,
): Promise<Authentication> {
  const { config } = deps;
  const first = await readStartup(socket, {
    maxMessageBytes: config.limits.maxMessageBytes,
    tls: deps.tls,
    onSecure: (tlsSocket) => hooks.secured(tlsSocket),
  });
  if (first.kind === 'cancel') return first;
  const client = first.socket;
  const reader = first.reader;
  const decoder = reader.decoder;
  hooks.connected(client, decoder);
  // Until the client has authenticated, a message may be no larger than a token needs.
  decoder.startTypedPhase(Math.min(config.limits.maxStartupMessageBytes, config.limits.maxMessageBytes));
  if (!deps.accepting()) throw new PgwardenError('PGW_SHUTTING_DOWN');

  const loopback = isLoopback(socket.remoteAddress);
  if (!first.secure) {
    const allowed =
      config.tls.allowPlaintext === 'always' || (config.tls.allowPlaintext === 'loopback' && loopback);
    // A token sent in clear over a network can be replayed by anyone on the path.
    if (!allowed || !loopback) throw new PgwardenError('PGW_TLS_REQUIRED');
  }
  const params = checkClientParameters(
    first.params,
    config.upstream.database,
    config.session.statementTimeoutMs,
  );
  hooks.parameters(params);
  if (first.minor > 0 || params.protocolOptions.length > 0) {
    // https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NEGOTIATEPROTOCOLVERSION
    client.write(be.negotiateProtocolVersion(0, params.protocolOptions));
  }

  client.write(be.authenticationCleartextPassword());
  let answer: FrontendMessage;
  try {
    answer = await reader.next();
  } catch (err) {
    if (!(err instanceof PgwardenError && err.code === 'PGW_MESSAGE_TOO_LARGE')) throw err;
    return hooks.failed(params, `password message too large: ${err.message}`, {
      detail: `before authentication pgwarden accepts messages of at most ${decoder.maxBytes} bytes`,
    });
  }
  if (answer.code !== Frontend.Password) {
    throw new PgwardenError('PGW_PROTOCOL_VIOLATION', { message: 'expected a password message' });
  }
  const token = fm.readPassword(answer.body);
  let identity: Identity;
  try {
    identity = await deps.verifyToken(token, params.user);
  } catch (err) {
    const reason = err instanceof TokenError ? `${err.reason}: ${err.message}` : String(err);
    return hooks.failed(params, reason);
  }
  if (!params.servedDatabase) {
    // Named only to a client whose token is valid.
    return hooks.failed(params, `database "${params.database}" is not served by pgwarden`, {
      hint: `connect to database "${config.upstream.database}"`,
    });
  }
  return { kind: 'authenticated', reader, params, identity };
}
