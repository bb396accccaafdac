import { connect, type Socket } from 'node:net';
import { serialize } from 'pg-protocol';

export interface RawMessage {
  readonly code: string;
  readonly body: Buffer;
}

/** A bare protocol client for tests that send what real drivers never would. */
export class RawClient {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** `localAddress`: another loopback address (127.0.0.2, ...) to connect from. */
  static async connect(port: number, localAddress?: string): Promise<RawClient> {
    const s = connect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) });
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    return new RawClient(s);
  }

  send(b: Buffer): void {
    this.socket.write(b);
  }

  /** Reads one typed message; undefined if the connection closed first. */
  async read(timeoutMs = 5000): Promise<RawMessage | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buf.length >= 5) {
        const len = this.buf.readInt32BE(1);
        if (this.buf.length >= 1 + len) {
          const m = { code: String.fromCharCode(this.buf[0]!), body: this.buf.subarray(5, 1 + len) };
          this.buf = this.buf.subarray(1 + len);
          return m;
        }
      }
      if (this.closed) return undefined;
      if (Date.now() > deadline) throw new Error('timed out waiting for a message');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  /** Reads a single byte (the answer to SSLRequest / GSSENCRequest). */
  async readByte(): Promise<string> {
    while (this.buf.length < 1) {
      if (this.closed) throw new Error('closed');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    const b = String.fromCharCode(this.buf[0]!);
    this.buf = this.buf.subarray(1);
    return b;
  }

  /** Reads messages until ReadyForQuery (inclusive) or close. */
  async untilReady(timeoutMs?: number): Promise<RawMessage[]> {
    const out: RawMessage[] = [];
    for (;;) {
      const m = await this.read(timeoutMs);
      if (!m) return out;
      out.push(m);
      if (m.code === 'Z') return out;
    }
  }

  /** Startup + password; returns the messages up to the first ReadyForQuery. */
  async login(
    user: string,
    database: string,
    token: string,
    extra: Record<string, string> = {},
  ): Promise<RawMessage[]> {
    this.send(serialize.startup({ user, database, ...extra }));
    const auth = await this.read();
    if (auth?.code !== 'R') return auth ? [auth] : [];
    this.send(serialize.password(token));
    return this.untilReady();
  }

  /** Half-closes: sends FIN, as a client that leaves politely. */
  end(): void {
    this.socket.end();
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The SQLSTATE and message of an ErrorResponse body. */
export function errorOf(
  m: RawMessage | undefined,
): { severity: string; code: string; message: string } | undefined {
  if (!m || m.code !== 'E') return undefined;
  const fields: Record<string, string> = {};
  for (const part of m.body.toString('utf8').split('\0')) if (part) fields[part[0]!] = part.slice(1);
  return { severity: fields.V ?? fields.S ?? '', code: fields.C ?? '', message: fields.M ?? '' };
}

export function startupPacket(code: number, extra = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(8 + extra.length);
  b.writeInt32BE(8 + extra.length);
  b.writeInt32BE(code, 4);
  extra.copy(b, 8);
  return b;
}
