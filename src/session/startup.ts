import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import { PgwardenError } from '../errors/registry.js';
import { stricterTimeout, timeoutMs } from '../policy/settings.js';
import { FrontendDecoder } from '../protocol/frontend-decoder.js';
import { readStartupPacket } from '../protocol/frontend-messages.js';
import { sslAccepted, sslDeclined } from '../protocol/backend-encoder.js';
import { MessageReader } from './message-reader.js';

export interface StartupRequest {
  readonly kind: 'startup';
  readonly socket: Socket;
  readonly reader: MessageReader;
  readonly secure: boolean;
  readonly minor: number;
  readonly params: ReadonlyMap<string, string>;
}

export type StartupPhaseResult =
  StartupRequest | { readonly kind: 'cancel'; processId: number; secretKey: Buffer };

/** The first byte of a TLS ClientHello record. */
const TLS_HANDSHAKE = 0x16;

/**
 * A client that began with a TLS handshake instead of a startup packet (PostgreSQL 17's
 * `sslnegotiation=direct`), which pgwarden does not take: it negotiates TLS with SSLRequest only.
 * Such a client cannot read a plaintext answer, so it gets none; the log says why.
 */
export class DirectTlsRefused extends Error {
  constructor() {
    super(
      'the client started TLS directly (sslnegotiation=direct); pgwarden takes TLS only after an SSLRequest',
    );
  }
}

/**
 * Reads the untyped startup-phase messages: SSLRequest (upgrade or decline), GSSENCRequest
 * (always declined), CancelRequest, and finally the StartupMessage.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL
 */
export async function readStartup(
  socket: Socket,
  opts: {
    maxMessageBytes: number;
    tls: SecureContext | undefined;
    /** Told of the TLS socket at once: an error before the startup packet must go through it. */
    onSecure?: (tlsSocket: TLSSocket) => void;
  },
): Promise<StartupPhaseResult> {
  const decoder = new FrontendDecoder(Math.min(opts.maxMessageBytes, 10_000));
  const reader = new MessageReader(socket, decoder);
  let current = socket;
  let secure = false;
  let askedGss = false;
  let askedSsl = false;
  for (;;) {
    const msg = await reader.next().catch((err: unknown) => {
      if (!secure && reader.firstByte === TLS_HANDSHAKE) throw new DirectTlsRefused();
      throw err;
    });
    const packet = readStartupPacket(msg.body);
    switch (packet.type) {
      case 'ssl':
      case 'gssenc': {
        // GSSENCRequest is always declined, and a client may then try SSLRequest (libpq does with
        // gssencmode=prefer and a Kerberos cache). Any other second request is refused.
        const again = packet.type === 'ssl' ? askedSsl : askedGss || askedSsl;
        if (again) {
          throw new PgwardenError('PGW_PROTOCOL_VIOLATION', { message: 'encryption was already negotiated' });
        }
        if (packet.type === 'ssl') askedSsl = true;
        else askedGss = true;
        // Bytes sent after the request but before the handshake would be read as if encrypted
        // (CVE-2021-23214): refuse them.
        if (decoder.pendingBytes > 0) {
          throw new PgwardenError('PGW_PROTOCOL_VIOLATION', {
            message: 'unexpected data after encryption request',
          });
        }
        if (packet.type === 'ssl' && opts.tls) {
          current.write(sslAccepted());
          const tlsSocket = new TLSSocket(current, { isServer: true, secureContext: opts.tls });
          reader.reattach(tlsSocket);
          current = tlsSocket;
          secure = true;
          opts.onSecure?.(tlsSocket);
        } else {
          current.write(sslDeclined());
        }
        continue;
      }
      case 'cancel':
        reader.detach();
        return { kind: 'cancel', processId: packet.processId, secretKey: packet.secretKey };
      case 'unsupported':
        throw new PgwardenError('PGW_PROTOCOL_VIOLATION', {
          message: `unsupported frontend protocol ${packet.major}.${packet.minor}: pgwarden supports 3.0`,
        });
      case 'startup':
        return {
          kind: 'startup',
          socket: current,
          reader,
          secure,
          minor: packet.minor,
          params: packet.params,
        };
    }
  }
}

/** Startup parameters a client may set; everything else is refused (fail closed). */
const allowedClientParameters = new Set([
  'user',
  'database',
  'application_name',
  'fallback_application_name',
  'client_encoding',
  'DateStyle',
  'datestyle',
  'TimeZone',
  'timezone',
  'IntervalStyle',
  'intervalstyle',
  'extra_float_digits',
]);

/** Client parameters pgwarden overrides with its pinned values rather than refusing them. */
const pinnedParameters = new Set(['client_encoding']);

export interface ClientParameters {
  readonly user: string;
  readonly database: string;
  /**
   * False when the client named another database than the one pgwarden serves. That is answered
   * as an authentication failure, after the password, so the served name is not revealed to a
   * client without a valid token.
   */
  readonly servedDatabase: boolean;
  readonly applicationName: string | null;
  /** Display settings forwarded upstream (DateStyle, TimeZone, ...). */
  readonly forwarded: Readonly<Record<string, string>>;
  /** `_pq_.` protocol options the client asked for; pgwarden supports none. */
  readonly protocolOptions: readonly string[];
  /** The client's own statement_timeout, shorter than pgwarden's pin (stricterTimeout). */
  readonly statementTimeout?: string;
}

/**
 * Checks the StartupMessage parameters. Parameters that would change how the server reads SQL
 * (options=-c ..., search_path, standard_conforming_strings) or switch protocols (replication)
 * are refused so the firewall and the server always parse the same way.
 */
export function checkClientParameters(
  params: ReadonlyMap<string, string>,
  database: string,
  pinnedTimeoutMs = 0,
): ClientParameters {
  const user = params.get('user');
  if (!user)
    throw new PgwardenError('PGW_STARTUP_REFUSED', { message: 'no user name given in the connection' });
  const db = params.get('database') ?? user;
  const forwarded: Record<string, string> = {};
  const protocolOptions: string[] = [];
  let statementTimeout: string | undefined;
  for (const [name, value] of params) {
    // node-postgres's statement_timeout option: a timeout shorter than pgwarden's pin is the
    // client's to choose; a longer one (or none, 0) is refused.
    if (name === 'statement_timeout') {
      if (!stricterTimeout(timeoutMs(value), pinnedTimeoutMs))
        throw new PgwardenError('PGW_STARTUP_REFUSED', {
          message: `startup parameter "statement_timeout" may only shorten pgwarden's (${pinnedTimeoutMs} ms)`,
        });
      statementTimeout = value;
      continue;
    }
    if (name.startsWith('_pq_.')) {
      protocolOptions.push(name);
      continue;
    }
    if (name === 'replication') {
      throw new PgwardenError('PGW_STARTUP_REFUSED', {
        message: 'replication connections are not allowed through pgwarden',
      });
    }
    if (!allowedClientParameters.has(name)) {
      throw new PgwardenError('PGW_STARTUP_REFUSED', {
        message: `startup parameter "${name}" is not allowed through pgwarden`,
        hint: 'remove it from the connection string (pgwarden pins search_path, encoding and timeouts)',
      });
    }
    if (
      name === 'user' ||
      name === 'database' ||
      name.endsWith('application_name') ||
      pinnedParameters.has(name)
    )
      continue;
    forwarded[name] = value;
  }
  return {
    user,
    database: db,
    servedDatabase: db === database,
    applicationName: params.get('application_name') ?? params.get('fallback_application_name') ?? null,
    forwarded,
    protocolOptions,
    ...(statementTimeout === undefined ? {} : { statementTimeout }),
  };
}
