import type { Socket } from 'node:net';
import type { PgwardenError } from '../errors/registry.js';
import type { OutBatch } from './out-batch.js';

/** What writing to the server needs of the session. */
export interface UpstreamWriterHost {
  /** The server's socket, once connected. */
  upstream(): Socket | undefined;
  /** The client's socket: not read while the server's is full. */
  client(): Socket;
  /** DecisionSink.whenDurable: called once the records queued so far are durable. */
  readonly whenDurable: ((done: (err: PgwardenError | undefined) => void) => void) | undefined;
  closed(): boolean;
  /** The log could not make the held records durable: the held statements never ran. */
  failed(err: PgwardenError): void;
  close(why: string): void;
}

/**
 * The bytes a session sends the server, in order. A chunk that decided a record the decision log
 * has only queued is held until the log has made it durable, and so is everything the session
 * sends after it meanwhile: a statement never runs before its record is durable, and the
 * session's bytes keep their order. While the server's socket is full the client is not read.
 */
export class UpstreamWriter {
  /** Bytes held until the decision log has made their records durable. */
  private held: Buffer[] | undefined;
  /** This chunk decided a record that the log has only queued. */
  private awaitingLog = false;
  /** Why the session ends once the held bytes are on their way. */
  private closeWhenReleased: string | undefined;
  /** The server's socket is full: the client is not read until it drains. */
  full = false;

  constructor(private readonly host: UpstreamWriterHost) {}

  /** The chunk being handled decided a record the log has only queued. */
  recordQueued(): void {
    if (this.host.whenDurable) this.awaitingLog = true;
  }

  /**
   * Whether the session must wait to close until the held bytes are on their way: statements the
   * client sent before it left still run, once their records are durable.
   */
  deferClose(why: string): boolean {
    if (!this.held) return false;
    this.closeWhenReleased ??= why;
    return true;
  }

  /** Sends what the chunk produced, or holds it behind records not yet durable. */
  flush(out: OutBatch): void {
    const bytes = out.take();
    if (this.awaitingLog) {
      this.awaitingLog = false;
      this.holdUntilDurable();
    }
    if (bytes === undefined || this.host.closed() || !this.host.upstream()) return;
    if (this.held) this.held.push(bytes);
    else this.write(bytes);
  }

  private write(bytes: Buffer): void {
    const socket = this.host.upstream()!;
    if (!socket.write(bytes) && !this.full) {
      this.full = true;
      this.host.client().pause();
      socket.once('drain', () => {
        this.full = false;
        this.host.client().resume();
      });
    }
  }

  private holdUntilDurable(): void {
    // Already holding: the write that releases the earlier records takes these along.
    if (this.held) return;
    this.held = [];
    this.host.whenDurable!((err) => this.release(err));
  }

  private release(err: PgwardenError | undefined): void {
    const held = this.held ?? [];
    this.held = undefined;
    if (err) return this.host.failed(err);
    if (held.length > 0 && !this.host.closed() && this.host.upstream()?.writable)
      this.write(held.length === 1 ? held[0]! : Buffer.concat(held));
    if (this.closeWhenReleased !== undefined) this.host.close(this.closeWhenReleased);
  }
}
