import type { Socket } from 'node:net';
import { PgwardenError } from '../errors/registry.js';
import { FrontendDecoder, type FrontendMessage } from '../protocol/frontend-decoder.js';

/**
 * Awaitable reads of whole messages, for the startup phase where each step waits for the
 * client's answer. After startup the session reads event-driven instead (see session.ts).
 */
export class MessageReader {
  private waiter: { resolve: (m: FrontendMessage) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;
  /** Set while the socket is paused because the bytes waiting exceed one message. */
  private held = false;
  /** The first byte the client sent (0x16 starts a TLS handshake: startup.ts). */
  firstByte: number | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.firstByte ??= chunk[0];
    try {
      this.decoder.push(chunk);
      this.deliver();
      // Startup asks for one message at a time. Beyond one message's worth of bytes nobody has
      // asked for, the client waits: while its bad token's FATAL was delayed, a tokenless client
      // streamed 400 MB into memory in a second (red team, round 33).
      if (this.decoder.pendingBytes > this.decoder.maxBytes + 5) {
        this.held = true;
        this.socket.pause();
      }
    } catch (err) {
      this.fail(err as Error);
    }
  };
  private readonly onEnd = (): void => this.fail(new PgwardenError('PGW_CLIENT_GONE'));
  private readonly onError = (err: Error): void =>
    this.fail(new PgwardenError('PGW_CLIENT_GONE', { detail: err.message, cause: err }));

  constructor(
    private socket: Socket,
    readonly decoder: FrontendDecoder,
  ) {
    this.attach(socket);
  }

  private attach(socket: Socket): void {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  /** Stops reading from the socket, e.g. before a TLS upgrade or the hand-over to the session. */
  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
  }

  /** Reads from another socket (the TLS socket after an upgrade). */
  reattach(socket: Socket): void {
    this.detach();
    this.attach(socket);
  }

  next(): Promise<FrontendMessage> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      try {
        this.deliver();
      } catch (err) {
        this.fail(err as Error);
      }
    });
  }

  private deliver(): void {
    if (!this.waiter) return;
    const m = this.decoder.next();
    if (m) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve(m);
    } else if (this.held && this.failure === undefined) {
      // A message is awaited and not all of it is here: read on.
      this.held = false;
      this.socket.resume();
    }
  }

  private fail(err: Error): void {
    // Nothing more is read from a client whose stream has failed (e.g. an oversized message): it
    // must not fill memory while its failure is answered.
    this.socket.off('data', this.onData);
    this.socket.pause();
    this.failure ??= err;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.failure);
  }
}
