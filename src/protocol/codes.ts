/**
 * Message codes of the PostgreSQL frontend/backend protocol, version 3.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 */

/** Codes of messages a client (frontend) sends after startup. */
export const Frontend = {
  Query: 0x51, // 'Q'
  Parse: 0x50, // 'P'
  Bind: 0x42, // 'B'
  Describe: 0x44, // 'D'
  Execute: 0x45, // 'E'
  Sync: 0x53, // 'S'
  Flush: 0x48, // 'H'
  Close: 0x43, // 'C'
  Terminate: 0x58, // 'X'
  FunctionCall: 0x46, // 'F'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyFail: 0x66, // 'f'
  /** PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse share this code. */
  Password: 0x70, // 'p'
} as const;

/** Codes of messages a server (backend) sends. */
export const Backend = {
  Authentication: 0x52, // 'R'
  BackendKeyData: 0x4b, // 'K'
  BindComplete: 0x32, // '2'
  CloseComplete: 0x33, // '3'
  CommandComplete: 0x43, // 'C'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  CopyBothResponse: 0x57, // 'W'
  DataRow: 0x44, // 'D'
  EmptyQueryResponse: 0x49, // 'I'
  ErrorResponse: 0x45, // 'E'
  FunctionCallResponse: 0x56, // 'V'
  NegotiateProtocolVersion: 0x76, // 'v'
  NoData: 0x6e, // 'n'
  NoticeResponse: 0x4e, // 'N'
  NotificationResponse: 0x41, // 'A'
  ParameterDescription: 0x74, // 't'
  ParameterStatus: 0x53, // 'S'
  ParseComplete: 0x31, // '1'
  PortalSuspended: 0x73, // 's'
  ReadyForQuery: 0x5a, // 'Z'
  RowDescription: 0x54, // 'T'
} as const;

/** Request codes carried in the version field of untyped startup-phase messages. */
export const StartupCode = {
  /** Protocol 3.0. */
  Protocol30: 196608,
  /** Protocol 3.2 (PostgreSQL 18 clients); pgwarden negotiates it down to 3.0. */
  Protocol32: 196610,
  CancelRequest: 80877102,
  SSLRequest: 80877103,
  GSSENCRequest: 80877104,
} as const;

/** Transaction status in ReadyForQuery: idle, in a transaction block, in a failed block. */
export type TransactionStatus = 'I' | 'T' | 'E';
