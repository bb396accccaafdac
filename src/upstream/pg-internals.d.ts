// Types for the parts of node-postgres pgwarden reuses for upstream authentication.
declare module 'pg/lib/crypto/sasl.js' {
  interface Session {
    mechanism: string;
    clientNonce: string;
    response: string;
    message: string;
  }
  export function startSession(mechanisms: string[], stream?: unknown): Session;
  export function continueSession(
    session: Session,
    password: string,
    serverData: string,
    stream?: unknown,
  ): Promise<void>;
  export function finalizeSession(session: Session, serverData: string): void;
}
declare module 'pg/lib/crypto/utils.js' {
  export function postgresMd5PasswordHash(user: string, password: string, salt: Buffer): Promise<string>;
}
declare module 'pg-protocol/dist/parser.js' {
  export class Parser {
    constructor(opts?: { mode?: 'text' | 'binary' });
    parse(buffer: Buffer, callback: (msg: { name: string } & Record<string, unknown>) => void): void;
  }
}
