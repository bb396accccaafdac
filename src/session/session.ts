import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { serialize } from 'pg-protocol';
import { clippedText } from '../audit/clip.js';
import type { DecisionRecord, DecisionSink } from '../audit/record.js';
import type { Config } from '../config/schema.js';
import { PgwardenError, errors } from '../errors/registry.js';
import type { Identity } from '../identity/identity.js';
import type { TokenVerifier } from '../identity/token.js';
import type { Judge, SessionEffect, Verdict } from '../policy/verdict.js';
import * as be from '../protocol/backend-encoder.js';
import {
  transactionEnd,
  readCommandTag,
  readErrorFields,
  type ErrorFieldValues,
  readParameterStatus,
  rowsFromTag,
} from '../protocol/backend-messages.js';
import { Backend, Frontend, type TransactionStatus } from '../protocol/codes.js';
import type { FrontendDecoder, FrontendMessage } from '../protocol/frontend-decoder.js';
import * as fm from '../protocol/frontend-messages.js';
import { BackendStream, type Disposition } from '../upstream/backend-stream.js';
import { cancelUpstream, connectUpstream, type UpstreamConnection } from '../upstream/connect.js';
import { authenticate } from './authenticate.js';
import type { CancelRegistry } from './cancel-registry.js';
import { confirmChanges, undoChanges, type MirroredNames } from './mirror.js';
import { SessionNames, type JudgedStatement } from './names.js';
import { checkParam } from './param-check.js';
import { PendingQueue, pending, type Pending, type Secrets } from './pending.js';
import { logAuditUnavailable, recordedParameters, SessionRecords, type Party } from './records.js';
import { keptBind, redactedError } from './redact-error.js';
import {
  longNameRefusal,
  nameTakenRefusal,
  namesAdded,
  nameTooLong,
  refusal,
  refuseNames,
  refuseParamTypes,
  refuseTakenName,
  sessionLimitRefusal,
} from './refusals.js';
import { OutBatch } from './out-batch.js';
import { Segments } from './segments.js';
import { StatementJudging } from './statement-judging.js';
import { UpstreamWriter } from './upstream-writer.js';
import { DirectTlsRefused, type ClientParameters } from './startup.js';
import { parentKeyRefusal } from '../rewrite/parent-guards.js';

/**
 * Errors the server can raise as it reads a message (an interrupt): statement timeout or cancel,
 * and lock timeout. Only these can be a Flush's (settleFlushes).
 */
const INTERRUPTS = new Set(['57014', '55P03']);

/** The server's SQLSTATE for a setting's value it does not take (invalid value for parameter "..."). */
const INVALID_PARAMETER_VALUE = '22023';

/** What an agent reads instead of a server error that names a relation the rules do not. */
const RELATION_WITHHELD =
  'the statement conflicts with data in a relation that the rules do not name (a foreign key from it, for example); pgwarden withholds its name';

export interface SessionDeps {
  readonly config: Config;
  readonly judge: Judge;
  readonly sink: DecisionSink;
  readonly verifyToken: TokenVerifier;
  readonly cancels: CancelRegistry<Session>;
  readonly tls: SecureContext | undefined;
  readonly instanceId: string;
  readonly logger: Logger;
  /** True while pgwarden accepts new sessions; false once shutting down. */
  readonly accepting: () => boolean;
  /**
   * Called once the token is verified: moves the connection from the startup count to the
   * session count, or says why it may not have a session (limits.maxConnections,
   * limits.maxSessionsPerHuman).
   */
  readonly admit?: (identity: Identity) => PgwardenError | undefined;
}

/**
 * The text forwarded in place of a denied statement. It fails in the server's parser, so the
 * server itself moves to the state a failed statement leaves (failed transaction block, skip to
 * Sync) and answers with the true transaction status; pgwarden replaces the syntax error with its
 * own. It also leaves a readable trace in the server's log.
 */
const STAND_IN_SQL = 'pgwarden denied this statement';

/** Why a session ended when its client left (close() reasons, also in session_end records). */
const TERMINATED = 'client sent Terminate';
const CLIENT_CLOSED = 'client closed';
const CLIENT_ERROR = 'client socket error';
const CLIENT_CLOSED_IN_STARTUP = 'client closed during startup';
/**
 * Ends after which the server's answers are not read: pgwarden could not tell which request each
 * answers (out of step, an unexpected message), the server is gone, the log cannot take outcomes,
 * or pgwarden is shutting down.
 */
const UNREADABLE_ANSWERS: ReadonlySet<string> = new Set([
  'PGW_INTERNAL',
  'PGW_UPSTREAM_UNAVAILABLE',
  'PGW_AUDIT_UNAVAILABLE',
  'PGW_SHUTTING_DOWN',
]);
/** Cursors with parameter values whose Binds a session keeps for redaction; beyond, messages are withheld. */
const MAX_CURSOR_BINDS = 16;

/**
 * Named portals that keep what their Bind carried: the Bind itself for redacting error messages,
 * or the values for the record (audit.redactParameters off). One transaction may bind
 * limits.maxNamesPerSession portals; 10,000 of them kept 8 KB each, 80 MB for one session, or far
 * more with the values kept (memory all sessions share). Beyond this many, a portal's execution
 * records no values and its error message is withheld.
 */
const MAX_PORTALS_KEEPING_BINDS = 256;
/** How long an ending session waits for the server's answers beyond its statement timeout. */
const DRAIN_MARGIN_MS = 5_000;
/** The wait when no statement timeout is pinned. */
const DRAIN_WITHOUT_TIMEOUT_MS = 60_000;
const STAND_IN_STATEMENT = 'pgwarden_denied';

/**
 * The longest server error message a decision record keeps: the server quotes the input it could
 * not read, which a client can make as long as it likes.
 */
const MAX_RECORDED_ERROR = 4096;

/** How long one session's pipelined messages may hold the event loop before others get a turn. */
const CLIENT_SLICE_MS = 5;

function targetProtocol(t: fm.TargetMessage): NonNullable<DecisionRecord['protocol']> {
  return t.target === 'S'
    ? { mode: 'extended', statementName: t.name }
    : { mode: 'extended', portalName: t.name };
}

function clientError(err: unknown): PgwardenError {
  return err instanceof PgwardenError ? err : new PgwardenError('PGW_INTERNAL', { cause: err });
}

/** Settings that must not drift: they change how the server reads SQL or who it thinks we are. */
function pinnedSettings(config: Config): ReadonlyMap<string, string> {
  return new Map([
    ['client_encoding', 'UTF8'],
    ['standard_conforming_strings', 'on'],
    ['search_path', config.session.searchPath],
    ['session_authorization', config.upstream.user],
  ]);
}

/** The statements of a message that are ROLLBACK TO SAVEPOINT (SessionEffect.rollbackTo). */
function rollbacksTo(effects: readonly SessionEffect[] | undefined): readonly number[] | undefined {
  const at = effects?.filter((e) => e.rollbackTo).map((e) => e.statement);
  return at?.length ? at : undefined;
}

/** How much of a SQL text too long to judge its decision record keeps. */
const OVERSIZED_SQL_HEAD_BYTES = 1024;

/**
 * One client connection: startup and authentication, then the relay between the client and its
 * own upstream connection, with every statement judged before it is forwarded.
 */
export class Session {
  readonly id = randomUUID();
  private client!: Socket;
  private decoder!: FrontendDecoder;
  private upstream: UpstreamConnection | undefined;
  private readonly party: Party = { identity: undefined, params: undefined };
  private readonly records: SessionRecords;
  private keyData: { processId: number; secretKey: number } | undefined;
  private readonly queue = new PendingQueue();
  /** Requests forwarded so far: the next one's Pending.order. */
  private forwarded = 0;
  private readonly names = new SessionNames();
  private readonly nameTaken = (name: string): boolean => this.names.statementNameTaken(name);
  private readonly pinned: ReadonlyMap<string, string>;
  /** After an error in an extended-protocol batch the server ignores messages until Sync; so do we. */
  private skipUntilSync = false;
  private status: TransactionStatus = 'I';
  private closed = false;
  private readonly log: Logger;
  private readonly judging: StatementJudging;
  private readonly toServer: UpstreamWriter;

  constructor(
    private readonly socket: Socket,
    private readonly deps: SessionDeps,
  ) {
    this.log = deps.logger.child({ session: this.id });
    this.pinned = pinnedSettings(deps.config);
    this.toServer = new UpstreamWriter({
      upstream: () => this.upstream?.socket,
      client: () => this.client,
      whenDurable: deps.sink.whenDurable?.bind(deps.sink),
      closed: () => this.closed,
      failed: (err) => {
        logAuditUnavailable(this.log, err.message);
        // The held statements never reached the server; the client learns that its session is over.
        this.fatal(err);
      },
      close: (why) => this.close(why),
    });
    this.judging = new StatementJudging({
      deps,
      names: this.names,
      party: this.party,
      closed: () => this.closed,
      skippingToSync: () => this.skipUntilSync,
      continueReading: () => this.continueReading(),
    });
    this.records = new SessionRecords(
      this.id,
      deps.instanceId,
      socket.remoteAddress ?? 'unknown',
      this.party,
      deps.sink,
      this.log,
    );
  }

  /** The server's last reported transaction status: idle, in a block, or in a failed block. */
  get transactionStatus(): TransactionStatus {
    return this.status;
  }

  get clientAddress(): string {
    return this.socket.remoteAddress ?? 'unknown';
  }

  /** Runs the session until it ends; never rejects. */
  async run(): Promise<void> {
    const { config } = this.deps;
    this.socket.setNoDelay(true);
    const startupTimer = setTimeout(() => {
      this.fatal(new PgwardenError('PGW_TIMEOUT', { message: 'startup timed out' }));
    }, config.limits.startupTimeoutMs);
    try {
      await this.startup();
    } catch (err) {
      if (err instanceof DirectTlsRefused) {
        this.log.info({ event: 'direct_tls_refused', client: this.clientAddress }, err.message);
        this.socket.destroy();
      } else this.fatal(clientError(err));
    } finally {
      clearTimeout(startupTimer);
    }
  }

  private async startup(): Promise<void> {
    const { config } = this.deps;
    this.socket.on('error', () => this.close(CLIENT_ERROR));
    // A client that leaves while its token is checked or its upstream connection is opened must
    // not leave that connection behind: close() marks the session, and startup stops there.
    this.socket.once('close', () => this.close(CLIENT_CLOSED_IN_STARTUP));
    const auth = await authenticate(this.socket, this.deps, {
      secured: (tlsSocket) => {
        this.client = tlsSocket;
      },
      connected: (client, decoder) => {
        this.client = client;
        this.decoder = decoder;
      },
      parameters: (params) => {
        this.party.params = params;
      },
      failed: (params, reason, extra) => this.authFailed(params, reason, extra),
    });
    if (auth.kind === 'cancel') {
      const target = this.deps.cancels.lookup(auth.processId, auth.secretKey);
      target?.cancel();
      this.socket.end();
      this.closed = true;
      this.ended = true;
      return;
    }
    const { reader, params, identity } = auth;
    const refused = this.deps.admit?.(identity);
    if (refused) throw refused;
    this.party.identity = identity;
    this.decoder.setMaxMessageBytes(config.limits.maxMessageBytes);

    // A client that leaves meanwhile ends the session, but its place in the limits is given back
    // only once this connection is settled: it is a server connection all the same (a flood of
    // clients leaving mid-connect held 72 server connections for one human, red team, round 35).
    this.connecting = true;
    try {
      this.upstream = await connectUpstream({
        ...config.upstream,
        parameters: {
          ...params.forwarded,
          client_encoding: 'UTF8',
          standard_conforming_strings: 'on',
          search_path: config.session.searchPath,
          statement_timeout: params.statementTimeout ?? String(config.session.statementTimeoutMs),
          application_name: `pgwarden/${identity.agent}`.slice(0, 63),
        },
      });
    } catch (err) {
      this.connected();
      // A display setting the client asked for (DateStyle, TimeZone, ...) that the server does
      // not take: the client's own mistake, told to it in the server's words, which quote only
      // its value. It was answered as an outage and logged as one at error level.
      const server = (err as { cause?: { code?: string; message?: string } }).cause;
      const named = (server?.message ?? '').toLowerCase();
      if (
        server?.code === INVALID_PARAMETER_VALUE &&
        Object.keys(params.forwarded).some((k) => named.includes(`parameter "${k.toLowerCase()}"`))
      ) {
        this.log.info(
          { event: 'startup_parameter_refused', err: server.message },
          'the server refused a startup parameter',
        );
        throw new PgwardenError('PGW_STARTUP_REFUSED', {
          message: `the server refused a startup parameter: ${server.message ?? ''}`,
        });
      }
      // The server's words (and host:port) are for operators; the agent gets the generic 08006.
      this.log.error({ event: 'upstream_unavailable', err: (err as PgwardenError).detail ?? String(err) });
      throw new PgwardenError('PGW_UPSTREAM_UNAVAILABLE', { cause: err });
    }
    if (this.closed) {
      this.upstream.socket.destroy();
      this.connected();
      return;
    }
    this.connecting = false;
    reader.detach();
    this.keyData = this.deps.cancels.register(this);
    const out: Buffer[] = [be.authenticationOk()];
    for (const [name, value] of this.upstream.parameters) out.push(be.parameterStatus(name, value));
    out.push(be.backendKeyData(this.keyData.processId, this.keyData.secretKey), be.readyForQuery('I'));
    this.records.bestEffort(this.records.base('session_start', { mode: 'startup' }));
    this.log.info({
      event: 'session_start',
      human: identity.human,
      agent: identity.agent,
      tenant: identity.tenant,
    });
    this.client.write(Buffer.concat(out));
    this.attachRelay();
    this.armTokenExpiry();
  }

  private expiryTimer: NodeJS.Timeout | undefined;

  /**
   * Ends the session when its token expires, even if it sits idle (perhaps in a transaction,
   * holding locks); checkTokenExpiry also refuses a chunk that arrives after that moment.
   */
  private armTokenExpiry(): void {
    const exp = this.party.identity?.expiresAt;
    if (exp === undefined || this.closed) return;
    // setTimeout waits at most 2^31 - 1 ms (about 24.8 days); a longer wait is re-armed.
    const wait = Math.min(Math.max(0, exp * 1000 - Date.now()), 2 ** 31 - 1);
    this.expiryTimer = setTimeout(() => {
      if (Date.now() < exp * 1000) return this.armTokenExpiry();
      const identity = this.party.identity!;
      this.log.info(
        { event: 'token_expired', human: identity.human, tokenId: identity.tokenId },
        'token expired during session',
      );
      this.fatal(new PgwardenError('PGW_TOKEN_EXPIRED'));
    }, wait);
  }

  /** From here on, both directions are event-driven and synchronous per chunk. */
  private attachRelay(): void {
    const upstream = this.upstream!.socket;
    const stream = new BackendStream((code, buf, bodyStart, end) =>
      this.onBackendMessage(code, buf, bodyStart, end),
    );
    upstream.on('data', (chunk: Buffer) => {
      let out: Buffer[];
      try {
        out = stream.push(chunk);
      } catch (err) {
        // An answer pgwarden cannot handle ends this session, never the process serving everyone.
        this.log.error(
          { event: 'upstream_answer_failed', err: (err as Error).message },
          'server answer not handled',
        );
        this.fatal(
          new PgwardenError('PGW_INTERNAL', {
            message: "pgwarden could not handle the server's answer; session ended",
          }),
        );
        return;
      }
      if (out.length > 0 && !this.closed) {
        const ok = this.client.write(out.length === 1 ? out[0]! : Buffer.concat(out));
        // Backpressure: stop reading results until the client has taken what it was sent.
        if (!ok) {
          upstream.pause();
          this.client.once('drain', () => upstream.resume());
        }
      }
      if (this.endAfterWrite) this.close(this.endAfterWrite.code);
      else if (this.heldByQueue && this.queue.roomToResume) {
        this.heldByQueue = false;
        queueMicrotask(() => {
          if (!this.closed && this.waiting) this.continueReading();
        });
      }
    });
    upstream.on('error', () => this.upstreamLost());
    upstream.on('close', () => this.upstreamLost());
    this.client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    this.client.on('close', () => this.close(CLIENT_CLOSED));
    this.client.on('end', () => this.close(CLIENT_CLOSED));
    this.client.on('error', () => this.close(CLIENT_ERROR));
    const idle = this.deps.config.limits.idleTimeoutMs;
    if (idle > 0) {
      this.client.setTimeout(idle, () => {
        if (!this.queue.awaitsAnswer())
          this.fatal(new PgwardenError('PGW_TIMEOUT', { message: 'idle session timed out' }));
      });
    }
    // Bytes the client pipelined behind its password message (the startup reader paused a client
    // that sent more than one message's worth).
    this.client.resume();
    if (this.decoder.pendingBytes > 0) this.onClientData(Buffer.alloc(0));
  }

  private endAfterWrite: PgwardenError | undefined;
  /** The server failed a request since its last ReadyForQuery. */
  private segmentFailed = false;
  /** The client is not read because too many requests await answers (PendingQueue.full). */
  private heldByQueue = false;
  /** A message held until the server has answered earlier segments, or until it is judged. */
  private waiting: FrontendMessage | undefined;
  private readonly segments = new Segments();

  // ---- client → server -------------------------------------------------------------------

  private onClientData(chunk: Buffer): void {
    if (this.closed) return;
    const out = new OutBatch();
    try {
      this.checkTokenExpiry();
      this.decoder.push(chunk);
      let m = this.waiting;
      this.waiting = undefined;
      const sliceEnd = performance.now() + CLIENT_SLICE_MS;
      while (!this.closed && (m ??= this.decoder.next())) {
        if (this.queue.full) {
          this.waiting = m;
          this.client.pause();
          this.heldByQueue = true;
          break;
        }
        if (this.segments.mustWait(m) || this.judging.judgingOffThread(m)) {
          this.waiting = m;
          this.client.pause();
          break;
        }
        this.onClientMessage(m, out);
        this.judging.handled(m);
        m = undefined;
        if (performance.now() > sliceEnd && this.decoder.pendingBytes > 0) {
          this.continueNextTurn();
          break;
        }
      }
    } catch (err) {
      this.toServer.flush(out);
      this.fatal(clientError(err));
      return;
    }
    this.toServer.flush(out);
  }

  /**
   * The rest of a long pipeline is handled in a later turn of the event loop, after other sessions
   * have had theirs: otherwise a client that sends hundreds of statements at once, each judged in
   * milliseconds, would hold everyone else up for the sum.
   */
  private continueNextTurn(): void {
    this.client.pause();
    setImmediate(() => {
      if (!this.closed && !this.waiting) this.continueReading();
    });
  }

  /**
   * Goes on with the messages already received, and reads the client again unless the server's
   * socket is still full (UpstreamWriter resumes it on drain): a client whose pipeline is sliced or
   * waits must not get past that backpressure.
   */
  private continueReading(): void {
    if (!this.toServer.full) this.client.resume();
    this.onClientData(Buffer.alloc(0));
  }

  private enqueue(p: Pending, bindsUnnamed = false): void {
    p.order = this.forwarded++;
    this.queue.push(p);
    const portals = this.names.mirror.portals as MirroredNames<unknown>;
    const unnamedPortalOnly = p.changes?.every((c) => c.space === portals && c.key === '') ?? true;
    this.segments.forwarded(p, unnamedPortalOnly, bindsUnnamed);
  }

  /** ReadyForQuery: a segment is answered; a message waiting for it goes on. */
  private segmentAnswered(): void {
    this.segments.answer();
    if (this.waiting && !this.segments.mustWait(this.waiting))
      queueMicrotask(() => {
        if (!this.closed && this.waiting) this.continueReading();
      });
  }

  /**
   * The Binds of cursors declared with parameter values. A cursor runs its query as it is fetched,
   * so a FETCH, MOVE or COMMIT (of a WITH HOLD cursor) fails quoting the DECLARE's values, which
   * the error records of this session redact from then on (red team, round 35).
   */
  private cursorValues: Secrets[] = [];

  private keepCursorValues(secrets: Secrets | undefined): void {
    if (this.cursorValues.length >= MAX_CURSOR_BINDS) this.cursorValues = ['withheld'];
    else this.cursorValues.push(secrets ?? 'withheld');
  }

  /** The last Bind of the unnamed statement: its Execute's record clears its unrecordedBind. */
  private unnamedBind: Pending | undefined;
  /** The last Parse of the unnamed statement: its Execute's record clears its unrecordedParse. */
  private unnamedParse: Pending | undefined;

  /** Checked once per chunk the client sends: a chunk is the batch of messages it sent at once. */
  private checkTokenExpiry(): void {
    const identity = this.party.identity!;
    if (identity.expiresAt !== undefined && Date.now() / 1000 > identity.expiresAt) {
      this.log.info(
        { event: 'token_expired', human: identity.human, tokenId: identity.tokenId },
        'token expired during session',
      );
      throw new PgwardenError('PGW_TOKEN_EXPIRED');
    }
  }

  private onClientMessage(m: FrontendMessage, out: OutBatch): void {
    switch (m.code) {
      case Frontend.Query: {
        const oversized = this.judging.oversizedSql(m);
        if (oversized !== undefined) return this.refuseOversized(m, oversized, out);
        return this.onQuery(this.judging.queryText(m), m, out);
      }
      case Frontend.Parse: {
        const oversized = this.judging.oversizedSql(m);
        if (oversized !== undefined) return this.refuseOversized(m, oversized, out);
        return this.onParse(this.judging.parseMessage(m), m, out);
      }
      case Frontend.Bind:
        return this.onBind(m, out);
      case Frontend.Execute:
        return this.onExecute(fm.readExecute(m.buffer, m.bodyStart, m.end), m, out);
      case Frontend.Describe: {
        const t = fm.readTarget(m.buffer, m.bodyStart, m.end);
        if (this.skipUntilSync) return;
        if (nameTooLong(t.name)) return this.denyLongName(t.name, targetProtocol(t), null, out);
        out.addMessage(m);
        this.enqueue(pending('describe'));
        return;
      }
      case Frontend.Close: {
        const t = fm.readTarget(m.buffer, m.bodyStart, m.end);
        if (this.skipUntilSync) return;
        if (nameTooLong(t.name)) return this.denyLongName(t.name, targetProtocol(t), null, out);
        const p = pending('close');
        this.names.close(t.target, t.name, p);
        out.addMessage(m);
        this.enqueue(p);
        return;
      }
      case Frontend.Sync:
        fm.expectEmpty(m.buffer, m.bodyStart, m.end);
        this.skipUntilSync = false;
        out.addMessage(m);
        this.enqueue(pending('sync'));
        return;
      case Frontend.Flush:
        fm.expectEmpty(m.buffer, m.bodyStart, m.end);
        out.addMessage(m);
        // One mark stands for any run of Flushes: the server answers none of them.
        if (!this.skipUntilSync && this.queue.last()?.kind !== 'flush') this.enqueue(pending('flush'));
        return;
      case Frontend.Terminate:
        this.toServer.flush(out);
        this.close(TERMINATED);
        return;
      case Frontend.FunctionCall: {
        // The fast-path function call runs a function by OID, outside SQL and so outside policy.
        const record = this.records.statement(
          { mode: 'function-call' },
          null,
          null,
          refusal(
            'PGW_FEATURE_REFUSED',
            'the fast-path FunctionCall message is not allowed; call functions in SQL',
          ),
        );
        // While the server skips to Sync it would not answer a stand-in either: one queued here
        // put every later answer against the request before it (red team, round 28).
        if (this.skipUntilSync) return this.records.bestEffort(record);
        this.deny(record, out, 'query');
        return;
      }
      case Frontend.CopyData:
      case Frontend.CopyDone:
      case Frontend.CopyFail:
        // pgwarden allows no COPY FROM STDIN, so this is data for one it refused: a client may send
        // its data without waiting for the go-ahead (asyncpg's copy_records_to_table does), and
        // the server ignores such stray messages too. Dropped, never forwarded (red team, round 50).
        return;
      default:
        throw new PgwardenError('PGW_PROTOCOL_VIOLATION', {
          message: `unexpected message type ${JSON.stringify(String.fromCharCode(m.code))}`,
        });
    }
  }

  /**
   * Refuses a Query or Parse whose SQL text is longer than limits.maxQueryBytes without reading it
   * into a string. Its record keeps the first KiB and the length: records of whole 15 MiB texts
   * took the proxy's memory past 1 GB and grew the NDJSON by 30 MiB a second (red team, round 11).
   */
  private refuseOversized(m: FrontendMessage, bytes: number, out: OutBatch): void {
    if (this.skipUntilSync) return;
    const parse = m.code === Frontend.Parse;
    const text = fm.sqlTextBounds(parse, m.buffer, m.bodyStart, m.end);
    const head = fm.utf8Head(m.buffer, text.start, text.end, OVERSIZED_SQL_HEAD_BYTES);
    const sql = `${head} [pgwarden: ${bytes} bytes in all, not recorded]`;
    const max = this.deps.config.limits.maxQueryBytes;
    const v = refusal('PGW_MESSAGE_TOO_LARGE', `query text of ${bytes} bytes exceeds ${max} bytes`);
    const protocol = parse
      ? {
          mode: 'extended' as const,
          statementName: fm.utf8Head(m.buffer, m.bodyStart, text.start - 1, 63 * 4),
        }
      : { mode: 'simple' as const };
    this.deny(this.records.statement(protocol, sql, null, v), out, parse ? 'extended' : 'query');
  }

  private onQuery(sql: string, m: FrontendMessage, out: OutBatch): void {
    if (this.skipUntilSync) return;
    const judgement = this.judging.judge(sql, 'simple');
    const v = this.refuseNames(
      refuseTakenName(judgement.verdict, this.nameTaken),
      namesAdded(judgement.verdict),
    );
    if (v.kind === 'deny')
      return this.deny(this.records.statement({ mode: 'simple' }, sql, judgement, v), out, 'query');
    let recordId: string | undefined;
    if (!this.deps.sink.off) {
      const record = this.records.statement({ mode: 'simple' }, sql, judgement, v);
      if (!this.tryDecide(record, out, 'query')) return;
      recordId = record.id;
    }
    if (v.kind === 'allow') out.addMessage(m);
    else out.add(serialize.query(v.sql));
    const p = pending('query', recordId);
    p.statements = Math.max(1, v.statementKinds.length);
    if (v.kind === 'rewrite') p.refusals = v.refusals ?? [];
    p.rollbacksTo = rollbacksTo(v.effects);
    // Its order once enqueued (below).
    this.names.applyEffects(v.effects, p, this.judging.rulesVersion, this.forwarded);
    this.enqueue(p);
  }

  private onParse(msg: fm.ParseMessage, m: FrontendMessage, out: OutBatch): void {
    if (this.skipUntilSync) return;
    if (nameTooLong(msg.statement)) {
      const protocol = { mode: 'extended' as const, statementName: msg.statement };
      return this.denyLongName(msg.statement, protocol, msg.query, out);
    }
    // The server refuses to redefine a named statement and keeps the old one. If pgwarden took the
    // new text as that name's verdict, a later Bind would be checked against the wrong statement
    // (say, one without the tenant check the old one needs), so refuse it here as the server would.
    if (msg.statement !== '' && this.nameTaken(msg.statement)) {
      const v = nameTakenRefusal(msg.statement);
      this.deny(
        this.records.statement({ mode: 'extended', statementName: msg.statement }, msg.query, null, v),
        out,
        'extended',
      );
      return;
    }
    const judged = this.judging.judge(msg.query, 'extended');
    const v = this.refuseNames(
      refuseParamTypes(refuseTakenName(judged.verdict, this.nameTaken), msg.paramTypes),
      msg.statement === '' ? 0 : 1,
    );
    const judgement = v === judged.verdict ? judged : { ...judged, verdict: v };
    const statement: JudgedStatement = {
      name: msg.statement,
      sql: msg.query,
      judgement,
      rulesVersion: this.judging.rulesVersion,
    };
    if (v.kind === 'deny') {
      const record = this.records.statement(
        { mode: 'extended', statementName: msg.statement },
        msg.query,
        judgement,
        v,
      );
      this.deny(record, out, 'extended');
      return;
    }
    // A named statement is recorded when it is prepared; an unnamed one when it is executed.
    let recordId: string | undefined;
    if (msg.statement !== '' && !this.deps.sink.off) {
      const record = this.records.statement(
        { mode: 'extended', statementName: msg.statement },
        msg.query,
        judgement,
        v,
      );
      if (!this.tryDecide(record, out, 'extended')) return;
      recordId = record.id;
    }
    // A PREPARE or DEALLOCATE sent by Parse runs at Execute: its effects are applied there.
    const p = pending('parse', recordId);
    if (msg.statement === '' && !this.deps.sink.off) {
      p.unrecordedParse = statement;
      this.unnamedParse = p;
    }
    this.names.mirror.statements.set(msg.statement, statement, p);
    if (v.usesSessionNames) {
      // Against the names as they are now, this Parse included.
      statement.namesVersion = this.names.version;
      this.names.namesDependent = true;
    }
    if (v.kind === 'allow') out.addMessage(m);
    else out.add(serialize.parse({ name: msg.statement, text: v.sql, types: [...msg.paramTypes] }));
    this.enqueue(p);
  }

  private onBind(m: FrontendMessage, out: OutBatch): void {
    const msg = fm.readBindNames(m.buffer, m.bodyStart, m.end);
    if (this.skipUntilSync) return;
    const longName = nameTooLong(msg.statement) ? msg.statement : nameTooLong(msg.portal) ? msg.portal : null;
    if (longName !== null) {
      const protocol = { mode: 'extended' as const, statementName: msg.statement, portalName: msg.portal };
      return this.denyLongName(longName, protocol, null, out);
    }
    // Cursors and portals share one name space on the server. A cursor pgwarden knows may have
    // ended with its transaction there; a portal bound under its name would then run as that
    // cursor for FETCH, which is judged against the cursor's query (red team, round 28).
    if (msg.portal !== '' && this.names.policyState.cursors.has(msg.portal)) {
      const v = refusal(
        'PGW_POLICY_DENIED',
        `portal name "${msg.portal}" is taken by a cursor of this session; bind another name (or the unnamed portal)`,
      );
      return this.refuseBind(msg, this.names.statements.get(msg.statement), v, out);
    }
    const statement = this.names.statements.get(msg.statement);
    if (!statement) {
      const v = refusal(
        'PGW_UNKNOWN_STATEMENT',
        `prepared statement "${msg.statement}" was not judged by pgwarden`,
      );
      return this.refuseBind(msg, undefined, v, out);
    }
    const changed = this.judging.staleRefusal(statement);
    if (changed) return this.refuseBind(msg, statement, changed, out);
    const limit = this.deps.config.limits.maxNamesPerSession;
    if (msg.portal !== '' && !this.names.portals.has(msg.portal) && this.names.count >= limit)
      return this.refuseBind(msg, statement, sessionLimitRefusal(this.names.count, limit), out);
    const v = statement.judgement.verdict;
    const checks = v.kind === 'deny' ? [] : (v.paramChecks ?? []);
    // Parameter values are read only when the verdict constrains one.
    const values = checks.length > 0 ? fm.readBind(m.buffer, m.bodyStart, m.end) : undefined;
    for (const check of checks) {
      const problem = checkParam(
        check,
        values?.params[check.index - 1],
        values?.paramFormats[check.index - 1] ?? 0,
      );
      if (problem) {
        const denial: Verdict = {
          ...refusal('PGW_POLICY_DENIED', problem),
          flags: ['cross_tenant_attempt'],
          reasons: ['param_check_failed'],
        };
        return this.refuseBind(msg, statement, denial, out);
      }
    }
    const p = pending('bind');
    if (msg.statement === '' && !this.deps.sink.off) {
      p.unrecordedBind = { statement, portal: msg.portal };
      this.unnamedBind = p;
    }
    const parameters = fm.bindHasParameters(m.buffer, m.bodyStart, m.end);
    const redact = this.deps.config.audit.redactParameters;
    p.redactError = parameters && redact;
    // Recorded at Execute, and read only for that. With redaction on (the default) the Bind is
    // kept as it came, and read only if an error message of its execution has values to redact.
    let recorded: (string | null)[] | undefined;
    let secrets: Secrets | undefined;
    const keeps = msg.portal === '' || this.names.namedPortals < MAX_PORTALS_KEEPING_BINDS;
    if (parameters && !this.deps.sink.off) {
      if (redact) secrets = keeps ? keptBind(m.buffer.subarray(m.bodyStart, m.end)) : 'withheld';
      else if (keeps) {
        const bind = values ?? fm.readBind(m.buffer, m.bodyStart, m.end);
        recorded = recordedParameters(bind.params, bind.paramFormats);
      }
    }
    p.secrets = secrets;
    // The Bind is queued right after this: its order is the next one.
    this.names.mirror.portals.set(
      msg.portal,
      {
        statement,
        order: this.forwarded,
        parameters,
        ...(recorded ? { values: recorded } : {}),
        ...(secrets ? { secrets } : {}),
      },
      p,
    );
    out.addMessage(m);
    this.enqueue(p, msg.portal === '');
  }

  /** Refuses a Bind, recorded with the statement it names (if pgwarden judged one). */
  private refuseBind(
    msg: { statement: string; portal: string },
    statement: JudgedStatement | undefined,
    v: Verdict,
    out: OutBatch,
  ): void {
    const protocol = { mode: 'extended' as const, statementName: msg.statement, portalName: msg.portal };
    const record = this.records.statement(protocol, statement?.sql ?? null, statement?.judgement ?? null, v);
    this.deny(record, out, 'extended');
  }

  private onExecute(msg: fm.ExecuteMessage, m: FrontendMessage, out: OutBatch): void {
    if (this.skipUntilSync) return;
    if (nameTooLong(msg.portal))
      return this.denyLongName(msg.portal, { mode: 'extended', portalName: msg.portal }, null, out);
    const bound = this.names.livePortal(msg.portal);
    const statement = bound?.statement;
    const protocol = {
      mode: 'extended' as const,
      statementName: statement?.name ?? '',
      portalName: msg.portal,
    };
    if (!statement) {
      const v = refusal(
        'PGW_UNKNOWN_CURSOR',
        `portal "${msg.portal}" was not judged by pgwarden, or has ended with its transaction`,
      );
      this.deny(this.records.statement(protocol, null, null, v), out, 'extended');
      return;
    }
    const changed = this.judging.staleRefusal(statement);
    if (changed) {
      this.deny(
        this.records.statement(protocol, statement.sql, statement.judgement, changed),
        out,
        'extended',
      );
      return;
    }
    // A PREPARE run here must still find its name free: it may have been taken since its Parse.
    const verdict = statement.judgement.verdict;
    const effects = verdict.kind === 'deny' ? undefined : verdict.effects;
    const refused = effects
      ? this.refuseNames(refuseTakenName(verdict, this.nameTaken), namesAdded(verdict))
      : verdict;
    if (refused !== verdict) {
      this.deny(
        this.records.statement(protocol, statement.sql, statement.judgement, refused, 0),
        out,
        'extended',
      );
      return;
    }
    let recordId: string | undefined;
    if (!this.deps.sink.off) {
      // Judged at Parse: this execution's record carries that verdict and no judging time.
      const record = this.records.statement(
        protocol,
        statement.sql,
        statement.judgement,
        statement.judgement.verdict,
        0,
        bound?.values ?? null,
      );
      if (!this.tryDecide(record, out, 'extended')) return;
      recordId = record.id;
      if (this.unnamedBind?.unrecordedBind?.portal === msg.portal)
        this.unnamedBind.unrecordedBind = undefined;
      if (this.unnamedParse?.unrecordedParse === statement) this.unnamedParse.unrecordedParse = undefined;
    }
    const p = pending('execute', recordId);
    p.redactError = (bound?.parameters ?? true) && this.deps.config.audit.redactParameters;
    p.secrets = bound?.secrets;
    if (verdict.kind === 'rewrite') p.refusals = verdict.refusals ?? [];
    p.rollbacksTo = rollbacksTo(effects);
    if (p.redactError && bound?.parameters && effects?.some((e) => e.declareCursor !== undefined))
      this.keepCursorValues(bound.secrets);
    this.names.applyEffects(effects, p, statement.rulesVersion, this.forwarded);
    out.addMessage(m);
    this.enqueue(p);
  }

  /**
   * Refuses a protocol-level statement or portal name the server would shorten (nameTooLong): the
   * message is denied, recorded, and the server skips to Sync as after any error.
   */
  private denyLongName(
    name: string,
    protocol: NonNullable<DecisionRecord['protocol']>,
    sql: string | null,
    out: OutBatch,
  ): void {
    this.deny(this.records.statement(protocol, sql, null, longNameRefusal(name)), out, 'extended');
  }

  /** Refused when `adding` more names would take the session past limits.maxNamesPerSession. */
  private refuseNames(v: Verdict, adding: number): Verdict {
    return refuseNames(v, this.names.count, adding, this.deps.config.limits.maxNamesPerSession);
  }

  /** Records the decision; if the log cannot take it, the statement is refused instead. */
  private tryDecide(record: DecisionRecord, out: OutBatch, mode: 'query' | 'extended'): boolean {
    try {
      this.deps.sink.decide(record);
      this.toServer.recordQueued();
      return true;
    } catch (err) {
      const e = clientError(err);
      logAuditUnavailable(this.log, e.detail ? `${e.message}: ${e.detail}` : e.message);
      const standIn = be.errorResponse({ severity: 'ERROR', sqlstate: e.sqlstate, message: e.message });
      this.forwardStandIn(standIn, out, mode);
      return false;
    }
  }

  /** Records a denial and makes the server fail where the denied message stood. */
  private deny(record: DecisionRecord, out: OutBatch, mode: 'query' | 'extended'): void {
    this.records.bestEffort(record);
    this.forwardStandIn(this.denialErrorOf(record), out, mode);
  }

  private denialErrorOf(record: DecisionRecord): Buffer {
    const e = record.error!;
    return be.errorResponse({
      severity: 'ERROR',
      sqlstate: e.sqlstate,
      message: e.message,
      hint: (record as { hint?: string }).hint,
    });
  }

  /**
   * Sends the stand-in so the server fails exactly where the denied message stood; the server's
   * answer to it is replaced by `error`.
   */
  private forwardStandIn(error: Buffer, out: OutBatch, mode: 'query' | 'extended'): void {
    if (mode === 'query') {
      out.add(serialize.query(STAND_IN_SQL));
      this.enqueue(pending('query', undefined, error));
    } else {
      out.add(serialize.parse({ name: STAND_IN_STATEMENT, text: STAND_IN_SQL }));
      this.enqueue(pending('parse', undefined, error));
      this.skipUntilSync = true;
    }
  }

  // ---- server → client -------------------------------------------------------------------

  private onBackendMessage(code: number, buf: Buffer, bodyStart: number, end: number): Disposition {
    // Once the session is condemned nothing more from the server reaches the client.
    if (this.endAfterWrite) return 'drop';
    if (this.queue.peek()?.kind === 'flush') {
      const unsure = this.settleFlushes(code, buf, bodyStart, end);
      if (unsure) return unsure;
    }
    switch (code) {
      case Backend.ParseComplete:
      case Backend.BindComplete:
      case Backend.CloseComplete:
      case Backend.NoData: {
        const p = this.queue.shift();
        if (!p) return 'forward';
        confirmChanges(p);
        if (p.kind === 'parse') this.records.complete(p, 'PARSE');
        // An unnamed statement bound with no Execute recorded yet: the server planned it with the
        // agent's values (folding immutable functions of them, which may take long), so it is
        // recorded now, as a failed Bind is (red team, round 55).
        if (p.unrecordedBind)
          this.recordAttempt(p, p.unrecordedBind.statement, p.unrecordedBind.portal, 'BOUND');
        return 'forward';
      }
      case Backend.RowDescription:
        if (this.queue.peek()?.kind === 'describe') this.queue.shift();
        return 'forward';
      case Backend.NoticeResponse:
        // A trigger's RAISE NOTICE can carry row values in DETAIL, as errors do.
        return be.withoutDetail(Backend.NoticeResponse, buf.subarray(bodyStart, end)) ?? 'forward';
      case Backend.ParameterDescription:
      case Backend.NotificationResponse:
      case Backend.CopyOutResponse:
      case Backend.CopyDone:
        return 'forward';
      case Backend.CommandComplete:
      case Backend.EmptyQueryResponse:
      case Backend.PortalSuspended:
        return this.onCompletion(code, buf, bodyStart, end);
      case Backend.ErrorResponse:
        return this.onErrorResponse(buf, bodyStart, end);
      case Backend.ReadyForQuery: {
        // ReadyForQuery answers a Query or a Sync. Anything else at the head means pgwarden and
        // the server disagree on what was asked: every later answer would be matched to the wrong
        // request (and undo the wrong changes), so the session ends.
        const head = this.queue.peek();
        if (head && head.kind !== 'query' && head.kind !== 'sync') return this.outOfStep(head.kind);
        const p = this.queue.shift();
        if (p) confirmChanges(p);
        if (p?.kind === 'query') this.records.complete(p);
        this.status = String.fromCharCode(buf[bodyStart] ?? 0x49) as TransactionStatus;
        // Idle: the transaction of everything up to here has ended (an implicit one at Sync too),
        // rolled back if the server failed a request since the last ReadyForQuery.
        if (this.status === 'I')
          this.names.transactionEnded(p?.order ?? this.forwarded, undefined, this.segmentFailed);
        this.segmentFailed = false;
        this.segmentAnswered();
        return 'forward';
      }
      case Backend.ParameterStatus: {
        const { name, value } = readParameterStatus(buf.subarray(bodyStart, end));
        const want = this.pinned.get(name);
        if (want !== undefined && value !== want) {
          this.log.warn({ event: 'session_drift', parameter: name, value }, 'pinned setting changed');
          return this.condemn(
            new PgwardenError('PGW_SESSION_DRIFT', {
              message: `${errors.PGW_SESSION_DRIFT.message} (${name} became "${value}")`,
            }),
          );
        }
        return 'forward';
      }
      default:
        // CopyInResponse, CopyBothResponse, FunctionCallResponse and anything unknown: pgwarden
        // never asks for these, so their arrival means the server and pgwarden disagree.
        this.log.error({ event: 'unexpected_backend_message', code: String.fromCharCode(code) });
        return this.condemn(
          new PgwardenError('PGW_INTERNAL', {
            message: 'unexpected message from the database; session ended',
          }),
        );
    }
  }

  /** CommandComplete, EmptyQueryResponse or PortalSuspended: a statement or a part of one is done. */
  private onCompletion(code: number, buf: Buffer, bodyStart: number, end: number): Disposition {
    const p = this.queue.peek();
    const ended = code === Backend.CommandComplete ? transactionEnd(buf, bodyStart, end) : undefined;
    // ROLLBACK TO SAVEPOINT answers ROLLBACK too, and ends nothing: what it drops (what was made
    // since the savepoint) stays in the mirror and is refused, never misjudged; what was made
    // before stays counted (red team, round 51: forgotten, WITH HOLD cursors past the limit took
    // the server's memory).
    if (ended && p?.rollbacksTo?.includes(p.kind === 'query' ? p.done : 0) !== true)
      this.names.transactionEnded(
        p?.order ?? this.forwarded,
        p?.kind === 'query' ? p.done : undefined,
        ended === 'ROLLBACK',
      );
    if (p?.kind === 'execute') {
      this.queue.shift();
      confirmChanges(p);
    }
    // One more statement of a simple Query is done: its changes are carried out.
    else if (p?.kind === 'query' && code !== Backend.PortalSuspended) p.done++;
    // The tag matters only to a decision record; with the log off there is none to complete.
    if (p?.recordId === undefined) return 'forward';
    const tag =
      code === Backend.CommandComplete
        ? readCommandTag(buf, bodyStart, end)
        : code === Backend.PortalSuspended
          ? 'SUSPENDED'
          : 'EMPTY';
    if (p.kind === 'execute') {
      p.command = tag;
      p.rows = rowsFromTag(tag);
      this.records.complete(p);
    } else if (p.kind === 'query') {
      p.command = tag;
      const rows = rowsFromTag(tag);
      if (rows !== null) p.rows = (p.rows ?? 0) + rows;
    }
    return 'forward';
  }

  /** The server failed the request at the head of the queue, and may skip what follows to Sync. */
  private onErrorResponse(buf: Buffer, bodyStart: number, end: number): Disposition {
    this.segmentFailed = true;
    const body = buf.subarray(bodyStart, end);
    const f = readErrorFields(body);
    const agentsView = this.withholdsRelation(f)
      ? be.errorResponse({ severity: 'ERROR', sqlstate: f.sqlstate, message: RELATION_WITHHELD })
      : be.withoutDetail(Backend.ErrorResponse, body);
    const p = this.queue.peek();
    if (!p) return agentsView ?? 'forward';
    p.sqlstate = f.sqlstate;
    // With parameters redacted, the record keeps no bind value quoted back by the server.
    p.errorMessage = clippedText(
      p.redactError || this.cursorValues.length > 0
        ? redactedError(f.message, [p.secrets, ...this.cursorValues])
        : f.message,
      MAX_RECORDED_ERROR,
    );
    const refusal = f.sqlstate === '22P02' ? parentKeyRefusal(f.message, p.refusals) : undefined;
    if (refusal !== undefined) {
      p.sqlstate = errors.PGW_PARENT_KEY_REFUSED.sqlstate;
      p.errorMessage = refusal;
    }
    if (p.kind === 'query') {
      // The statements before the failing one ran; it and the rest of the query did not. The
      // query stays queued until ReadyForQuery: its changes are forgotten here, undone once.
      this.names.queryFailed(p, p.done, p.statements);
      this.names.undoFailed(p, p.done, f.sqlstate);
    } else if (p.kind !== 'sync') {
      // An error at Sync (the commit of an implicit transaction) starts no skipping: the
      // ReadyForQuery that follows takes the Sync off the queue.
      this.queue.shift();
      // The failing request and those the server skips have no effect: undo what pgwarden
      // recorded for them, oldest first (see mirror.ts).
      if (p.kind === 'bind') this.names.unnamedPortalBindFailed(p);
      this.names.undoFailed(p, 0, f.sqlstate);
      this.records.complete(p);
      if (p.unrecordedBind)
        this.recordAttempt(p, p.unrecordedBind.statement, p.unrecordedBind.portal, 'BIND FAILED');
      if (p.unrecordedParse) this.recordAttempt(p, p.unrecordedParse, undefined, 'PARSE FAILED');
      // The server now ignores everything up to Sync, so those requests get no answers.
      for (const skipped of this.queue.shiftUntilSync()) {
        undoChanges(skipped);
        // A skipped Query ended a segment that no ReadyForQuery will answer: counted as
        // answered here, or every later message that waits for the answers waited for good
        // (red team, round 32).
        if (skipped.kind === 'query') this.segments.answer();
        skipped.command = 'SKIPPED';
        // Why it was skipped: the error of the request that failed (a Bind refused, say),
        // already redacted if that request carried parameter values.
        skipped.sqlstate = p.sqlstate;
        skipped.errorMessage = p.errorMessage;
        this.records.complete(skipped);
      }
      // No Sync forwarded yet: the server will discard what the client sends until its Sync,
      // so pgwarden must not expect answers to those messages either.
      if (this.queue.length === 0) this.skipUntilSync = true;
    }
    if (refusal !== undefined && !p.standIn)
      return be.errorResponse({ severity: 'ERROR', sqlstate: p.sqlstate, message: refusal });
    return p.standIn ?? agentsView ?? 'forward';
  }

  /**
   * The unnamed statement's attempt, recorded when the server answered its Parse or Bind before an
   * Execute of it was recorded (the client's messages came in separate chunks, or it sent no
   * Execute), with the server's answer as its outcome: its error, or BOUND. Nothing of it ran, but
   * the server analysed it (a Parse runs the input functions of its literals' types) or planned it
   * with the agent's values (a Bind folds immutable functions of them).
   */
  private recordAttempt(
    p: Pending,
    statement: JudgedStatement,
    portal: string | undefined,
    command: 'PARSE FAILED' | 'BIND FAILED' | 'BOUND',
  ): void {
    p.unrecordedBind = undefined;
    if (this.unnamedParse?.unrecordedParse === statement) this.unnamedParse.unrecordedParse = undefined;
    const protocol = {
      mode: 'extended' as const,
      statementName: '',
      ...(portal === undefined ? {} : { portalName: portal }),
    };
    const record = this.records.statement(
      protocol,
      statement.sql,
      statement.judgement,
      statement.judgement.verdict,
      0,
    );
    this.records.bestEffort(record);
    const outcome = pending('bind', record.id);
    outcome.command = command;
    outcome.sqlstate = p.sqlstate;
    outcome.errorMessage = p.errorMessage;
    this.records.complete(outcome);
  }

  /**
   * Whether a server error names a relation the rules do not (a foreign key from an unlisted table
   * names it and its constraint): agents get the SQLSTATE and a message without the name, the
   * decision record keeps the server's own message for responders.
   */
  private withholdsRelation(f: ErrorFieldValues): boolean {
    if (f.severity !== 'ERROR' || f.table === undefined || f.schema === undefined) return false;
    if (f.schema === 'pg_catalog' || f.schema === 'information_schema') return false;
    return !this.deps.judge.namesRelation(`${f.schema}.${f.table}`);
  }

  /**
   * A Flush at the head of the queue. Any answer to a request means the server read the Flush
   * without incident: its marks go. The one error a Flush can draw is an interrupt that fires as
   * the server reads it (a statement timeout armed by an earlier Parse, Bind or Describe, or a lock
   * timeout), after which the server skips to Sync (red team, round 29). With nothing queued after
   * the Flush such an error is its own, and pgwarden skips too. Before an extended-protocol
   * request or a Sync it comes to the same (that request fails or is skipped alike); before a
   * simple Query it does not (a Query's own timeout skips nothing), and the session ends rather
   * than guess. Any other error belongs to the request after the Flush (red team, round 30).
   */
  private settleFlushes(code: number, buf: Buffer, bodyStart: number, end: number): Buffer | undefined {
    // Messages the server sends of its own accord answer nothing.
    if (
      code === Backend.NoticeResponse ||
      code === Backend.ParameterStatus ||
      code === Backend.NotificationResponse
    )
      return undefined;
    while (this.queue.peek()?.kind === 'flush') this.queue.shift();
    if (code !== Backend.ErrorResponse) return undefined;
    const interrupt = INTERRUPTS.has(readErrorFields(buf.subarray(bodyStart, end)).sqlstate);
    if (this.queue.length === 0) this.skipUntilSync = true;
    else if (interrupt && this.queue.peek()?.kind === 'query') return this.outOfStep('flush');
    return undefined;
  }

  private outOfStep(kind: string): Buffer {
    this.log.error({ event: 'protocol_out_of_step', expected: kind }, 'server answer out of step');
    return this.condemn(
      new PgwardenError('PGW_INTERNAL', { message: 'pgwarden lost track of the protocol; session ended' }),
    );
  }

  /** Ends the session after this chunk: the client gets the FATAL error in place of the message. */
  private condemn(err: PgwardenError): Buffer {
    this.endAfterWrite = err;
    return be.errorResponse({ severity: 'FATAL', sqlstate: err.sqlstate, message: err.message });
  }

  /**
   * Every authentication failure is answered alike: logged and recorded with its reason, then the
   * same FATAL after the same delay, so failures reveal nothing and cannot be probed quickly.
   */
  private async authFailed(
    params: ClientParameters,
    reason: string,
    extra: { detail?: string; hint?: string } = {},
  ): Promise<never> {
    this.party.params = params;
    this.records.authFailure(params.user, reason);
    this.log.warn(
      { event: 'auth_failure', user: params.user, client: this.clientAddress, reason },
      'authentication failed',
    );
    await new Promise((r) => setTimeout(r, this.deps.config.auth.failureDelayMs));
    throw new PgwardenError('PGW_AUTH_FAILED', {
      message: `password authentication failed for user "${params.user}"`,
      ...extra,
    });
  }

  // ---- ending ----------------------------------------------------------------------------

  /** Sends a CancelRequest for whatever the upstream backend is running. */
  cancel(): void {
    const up = this.upstream;
    if (!up) return;
    const { host, port } = this.deps.config.upstream;
    cancelUpstream(host, port, up.processId, up.secretKey);
  }

  /** Ends the session with a FATAL error the client can read. */
  fatal(err: PgwardenError): void {
    if (this.closed) return;
    const level = err.spec.logLevel;
    this.log[level]({ event: 'session_fatal', code: err.code, message: err.message });
    const sock = this.client ?? this.socket;
    if (sock.writable) {
      sock.write(
        be.errorResponse({
          severity: 'FATAL',
          sqlstate: err.sqlstate,
          message: err.message,
          detail: err.detail,
          hint: err.hint,
        }),
      );
    }
    this.close(err.code);
  }

  private upstreamLost(): void {
    if (this.closed) return;
    this.fatal(
      new PgwardenError('PGW_UPSTREAM_UNAVAILABLE', { message: 'the database closed the connection' }),
    );
  }

  close(why: string): void {
    clearTimeout(this.expiryTimer);
    if (this.closed) return;
    // Statements the client sent before it left still run, once their records are durable.
    if (this.toServer.deferClose(why)) return;
    this.closed = true;
    if (this.keyData) this.deps.cancels.unregister(this.keyData.processId);
    const sock = this.client ?? this.socket;
    sock.end();
    setTimeout(() => sock.destroy(), 1000).unref();
    const up = this.upstream;
    if (
      up &&
      !UNREADABLE_ANSWERS.has(why) &&
      !this.endAfterWrite &&
      this.queue.awaitsAnswer() &&
      up.socket.writable
    )
      return this.drainUpstream(up.socket, why);
    this.releaseUpstream(why);
  }

  /**
   * The session ends with requests still unanswered. A Terminate goes to the server behind them.
   * After the client's own Terminate they run to the end, as they would against the server itself;
   * otherwise (the client vanished, its token expired, an idle timeout) the one running is
   * cancelled, and the server still runs those it has already received. Either way pgwarden reads
   * the server's answers until it closes, so each record says what became of its statement, not a
   * guess (statements of a pipeline cut off by its token's expiry ran, and were recorded as
   * abandoned: red team, round 33). The session keeps its place in the connection limits until
   * then, since it still holds a server connection. The statement timeout pgwarden pins bounds the
   * wait.
   */
  private drainUpstream(upstream: Socket, why: string): void {
    if (why !== TERMINATED) this.cancel();
    // The client's backpressure paused the server's socket; nobody reads the client side now.
    upstream.resume();
    upstream.end(serialize.end());
    const limit = setTimeout(
      () => {
        this.cancel();
        upstream.destroy();
      },
      (this.deps.config.session.statementTimeoutMs || DRAIN_WITHOUT_TIMEOUT_MS) + DRAIN_MARGIN_MS,
    );
    limit.unref();
    upstream.once('close', () => {
      clearTimeout(limit);
      this.releaseUpstream(why);
    });
  }

  /** Gives up the server connection; requests still unanswered are recorded as abandoned. */
  private releaseUpstream(why: string): void {
    const up = this.upstream;
    if (up) {
      if (this.queue.awaitsAnswer()) this.cancel();
      for (const p of this.queue.drain()) {
        p.sqlstate ??= '08006';
        p.command ??= 'ABANDONED';
        this.records.complete(p);
      }
      if (up.socket.writable) up.socket.end(serialize.end());
      up.socket.destroy();
    }
    if (this.party.identity && this.upstream) {
      this.records.bestEffort({ ...this.records.base('session_end', null), detail: why });
      this.log.info({ event: 'session_end', why });
    }
    if (!this.connecting) this.markEnded();
  }

  /** The server connection being opened at startup is settled (open, refused or given up). */
  private connected(): void {
    this.connecting = false;
    if (this.closed) this.markEnded();
  }

  private markEnded(): void {
    if (this.ended) return;
    this.ended = true;
    for (const f of this.endedCallbacks.splice(0)) f();
  }

  private ended = false;
  /** A server connection is being opened (startup): the session holds it even if it has closed. */
  private connecting = false;
  private readonly endedCallbacks: (() => void)[] = [];

  /** Calls `f` once the session holds no server connection (at once if it holds none now). */
  whenEnded(f: () => void): void {
    if (this.ended) f();
    else this.endedCallbacks.push(f);
  }
}
