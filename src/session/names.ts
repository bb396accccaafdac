/**
 * The names a session has on the server, as pgwarden mirrors them: protocol-level statements
 * (Parse) with their judgements, portals (Bind), and SQL-level prepared statements and cursors
 * (PREPARE, DECLARE). Every change goes through mirror.ts, recorded on the request that makes it
 * and undone if the server does not carry that request out.
 */
import type { Judgement, SessionEffect, StaleName, StatementSource } from '../policy/verdict.js';
import { MirroredNames, mapStore, undoChanges, type ChangeLog, type NameStore } from './mirror.js';

/** The server's SQLSTATE for a cursor it does not have. */
const INVALID_CURSOR_NAME = '34000';
import type { Secrets } from './pending.js';

/** A statement judged at Parse time (protocol-level prepared statement, named or unnamed). */
export interface JudgedStatement {
  readonly name: string;
  readonly sql: string;
  readonly judgement: Judgement;
  /**
   * The rules it was judged under (Judge.rulesVersion); moved on when the rules in force judge it
   * alike (see Session.stillJudgedAlike).
   */
  rulesVersion: number;
  /**
   * For a statement whose verdict read the session's names (EXECUTE p, FETCH c: usesSessionNames),
   * the names it was judged against (SessionNames.version); judged again once they change.
   */
  namesVersion?: number;
}

/** A portal made by Bind: its statement, and when the Bind was forwarded (Pending.order). */
export interface BoundPortal {
  readonly statement: JudgedStatement;
  readonly order: number;
  /** Its Bind carried parameter values (which an error message of its execution can quote). */
  readonly parameters: boolean;
  /** Those values as its execution's record keeps them, with audit.redactParameters off. */
  readonly values?: readonly (string | null)[];
  /**
   * With audit.redactParameters on, the Bind's body as it came: an error message of its execution
   * has the values in it redacted (redact-error.ts bindValueTexts).
   */
  readonly secrets?: Secrets;
}

/** A SQL-level prepared statement or cursor: the rules it was judged under, and its PREPARE or DECLARE. */
export interface SqlName {
  rulesVersion: number;
  readonly source?: StatementSource;
  /** A cursor: the request (Pending.order) and statement of its DECLARE, and whether WITH HOLD. */
  readonly declaredAt?: readonly [order: number, statement: number];
  readonly hold?: true;
}

/**
 * SQL-level names with their sources, and beside them the rules version of each, which is all
 * the policy engine reads (and all that goes to the judge thread with a statement).
 */
function withVersions(
  full: Map<string, SqlName>,
  versions: Map<string, number>,
  kept: { chars: number },
): NameStore<SqlName> {
  return {
    get: (key) => full.get(key),
    set: (key, value) => {
      kept.chars += sourceChars(value) - sourceChars(full.get(key));
      full.set(key, value);
      versions.set(key, value.rulesVersion);
    },
    delete: (key) => {
      kept.chars -= sourceChars(full.get(key));
      full.delete(key);
      versions.delete(key);
    },
    keys: () => full.keys(),
  };
}

function sourceChars(name: SqlName | undefined): number {
  return name?.source ? name.source.sql.length + name.source.forwarded.length : 0;
}

/** Portals, and beside the named ones the rules version of their statement's judgement. */
function withPortalVersions(
  full: Map<string, BoundPortal>,
  versions: Map<string, number>,
): NameStore<BoundPortal> {
  return {
    get: (key) => full.get(key),
    set: (key, value) => {
      full.set(key, value);
      if (key !== '') versions.set(key, value.statement.rulesVersion);
    },
    delete: (key) => {
      full.delete(key);
      versions.delete(key);
    },
    keys: () => full.keys(),
  };
}

/**
 * Characters of PREPARE and DECLARE texts one session keeps to judge them again after a reload.
 * Each may be limits.maxQueryBytes, and its rewrite many times that, for limits.maxNamesPerSession
 * names: memory every session shares. Past this, a name keeps none, and after a reload it is
 * refused as before (PGW_RULES_CHANGED).
 */
const MAX_KEPT_SOURCE_CHARS = 1024 * 1024;

export class SessionNames {
  readonly statements = new Map<string, JudgedStatement>();
  readonly portals = new Map<string, BoundPortal>();
  /**
   * Moves on with every change to any of the session's names, made, undone or forgotten: a
   * statement that runs `EXECUTE p` was judged against the `p` of its Parse, and the server runs
   * whatever `p` is when it executes (red team, round 48: an EXECUTE judged against a harmless
   * PREPARE ran an INSERT Parsed under the same name later, with another tenant's values).
   */
  version = 0;
  /** A statement of this session reads its names (JudgedStatement.namesVersion). */
  namesDependent = false;
  /** What the policy engine reads to judge SQL that names them (EXECUTE, FETCH, ...). */
  readonly policyState = {
    preparedStatements: new Map<string, number>(),
    cursors: new Map<string, number>(),
    portals: new Map<string, number>(),
  };
  private readonly sqlNames = { prepared: new Map<string, SqlName>(), cursor: new Map<string, SqlName>() };
  /** Characters of the sources the names above keep (MAX_KEPT_SOURCE_CHARS). */
  private readonly kept = { chars: 0 };
  readonly mirror = {
    statements: new MirroredNames(this.counted(mapStore(this.statements))),
    portals: new MirroredNames(this.counted(withPortalVersions(this.portals, this.policyState.portals))),
    prepared: new MirroredNames(
      this.counted(withVersions(this.sqlNames.prepared, this.policyState.preparedStatements, this.kept)),
    ),
    cursors: new MirroredNames(
      this.counted(withVersions(this.sqlNames.cursor, this.policyState.cursors, this.kept)),
    ),
  };

  /** `store`, moving `version` on at each change. */
  private counted<V>(store: NameStore<V>): NameStore<V> {
    return {
      get: (key) => store.get(key),
      set: (key, value) => {
        this.version++;
        store.set(key, value);
      },
      delete: (key) => {
        this.version++;
        store.delete(key);
      },
      keys: () => store.keys(),
    };
  }

  /** Whether `statement` read names that have changed since it was judged. */
  namesChangedFor(statement: JudgedStatement): boolean {
    return statement.namesVersion !== undefined && statement.namesVersion !== this.version;
  }
  /**
   * The order of the latest request at whose reply the server had ended a transaction: every
   * portal bound before it is gone (see portalEnded).
   */
  private transactionEndedAt = -1;

  /**
   * PREPAREs pgwarden undid that the server may nonetheless hold: the last statement of a Query of
   * several fails when its implicit transaction cannot commit (a deferred constraint, a WITH HOLD
   * cursor that cannot be read to the end), and the server reports that as the last statement's
   * error although the PREPARE, which no rollback undoes, was carried out. pgwarden cannot tell,
   * so it does not let the name run (EXECUTE) but counts it against limits.maxNamesPerSession:
   * uncounted, such names took the server's memory without bound (red team, round 48). They count
   * for the rest of the session: a DEALLOCATE ALL that drops them cannot be told from one the
   * server refuses.
   */
  possiblyHeld = 0;

  /** Named prepared statements, portals and cursors the session holds (unnamed ones are one slot each). */
  get count(): number {
    const { preparedStatements, cursors } = this.policyState;
    return (
      named(this.statements) +
      named(this.portals) +
      preparedStatements.size +
      cursors.size +
      this.possiblyHeld
    );
  }

  /**
   * A request failed from its statement `from` on (with `sqlstate`): its changes from there are
   * undone. A CLOSE the server refused because it had no such cursor (34000) is the exception: the
   * cursor is gone on the server whatever pgwarden's mirror said (a WITH HOLD cursor a ROLLBACK
   * dropped), so it leaves the mirror instead of coming back.
   */
  undoFailed(log: ChangeLog, from: number, sqlstate: string): void {
    const cursors = this.mirror.cursors as MirroredNames<unknown>;
    // The entries the failed CLOSE dropped; an entry a later DECLARE put under the name stays.
    const gone =
      sqlstate === INVALID_CURSOR_NAME
        ? new Set(
            (log.changes ?? [])
              .filter(
                (c) =>
                  c.statement === from && c.space === cursors && c.prev !== undefined && !cursors.has(c.key),
              )
              .map((c) => c.prev),
          )
        : undefined;
    undoChanges(log, from);
    if (gone?.size) this.mirror.cursors.forget((c) => gone.has(c));
  }

  /**
   * A Bind of the unnamed portal failed at the server: the server had already dropped the portal it
   * replaces (exec_bind_message makes the new one before it reads the values, and leaves it empty),
   * so undoing the Bind leaves no portal under that name, not the old one (red team, round 51: an
   * Execute after it was recorded as running the old statement). Call before its changes are undone.
   */
  unnamedPortalBindFailed(log: ChangeLog): void {
    const portals = this.mirror.portals as MirroredNames<unknown>;
    const c = log.changes?.find((x) => x.space === portals && x.key === '');
    if (c) c.prev = undefined;
  }

  /**
   * A Query's statement `failed` failed. When it is the last of several, its PREPAREs may have been
   * carried out all the same (possiblyHeld), and are counted; call before its changes are undone.
   */
  queryFailed(log: ChangeLog, failed: number, statements: number): void {
    if (statements < 2 || failed !== statements - 1) return;
    for (const c of log.changes ?? [])
      if (
        c.statement === failed &&
        c.space === (this.mirror.prepared as MirroredNames<unknown>) &&
        c.prev === undefined
      )
        this.possiblyHeld++;
  }

  /** A SQL-level prepared statement or cursor of this session. */
  sqlName(name: StaleName): SqlName | undefined {
    return this.sqlNames[name.kind].get(name.name);
  }

  /**
   * The rules of `rulesVersion` forward this name's PREPARE or DECLARE as it was forwarded: the
   * server holds what they would run, so the name is theirs. Not a change the server makes, so
   * it is not recorded for undoing: an undo restores an entry whose version is still true of it.
   */
  judgedAlike(name: StaleName, rulesVersion: number): void {
    const entry = this.sqlNames[name.kind].get(name.name);
    if (!entry) return;
    entry.rulesVersion = rulesVersion;
    const versions =
      name.kind === 'prepared' ? this.policyState.preparedStatements : this.policyState.cursors;
    versions.set(name.name, rulesVersion);
  }

  /** Named portals the session holds (some may have ended with their transaction already). */
  get namedPortals(): number {
    return named(this.portals);
  }

  /**
   * Protocol-level (Parse) and SQL-level (PREPARE) statements share one name space on the server,
   * which keeps the first of two with the same name.
   */
  statementNameTaken(name: string): boolean {
    return this.statements.has(name) || this.policyState.preparedStatements.has(name);
  }

  /** The portal Execute names, unless it is unknown or ended with its transaction. */
  livePortal(name: string): BoundPortal | undefined {
    const bound = this.portals.get(name);
    return bound && !this.portalEnded(bound) ? bound : undefined;
  }

  /**
   * The server drops every portal when the transaction that made it ends (COMMIT, ROLLBACK, the
   * end of an implicit transaction at Sync or after a Query), except cursors declared WITH HOLD,
   * which pgwarden tracks as SQL-level cursors, not as portals. pgwarden learns of the end from
   * the server's replies, in order with the requests: a portal bound before the request at whose
   * reply a transaction had ended is gone, one bound after it (in a later pipeline already
   * forwarded) is not.
   * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
   */
  private portalEnded(portal: BoundPortal): boolean {
    return portal.order < this.transactionEndedAt;
  }

  /**
   * The server's reply to the request of this order (to its statement of this index, in a Query of
   * several) shows that a transaction had ended; `rolledBack` when it did not commit.
   */
  transactionEnded(order: number, statement = Number.POSITIVE_INFINITY, rolledBack = false): void {
    this.forgetEndedCursors([order, statement], rolledBack);
    if (before(this.lastEnd, [order, statement])) this.lastEnd = [order, statement];
    if (order <= this.transactionEndedAt) return;
    this.transactionEndedAt = order;
    // The map is only tidied here; portalEnded decides. A portal whose Bind is still unanswered
    // was bound after this request, so none of those is touched. The unnamed portal alone is left
    // for the next Bind to replace: it is not counted against the limit on names.
    if (named(this.portals) > 0) this.mirror.portals.forget((p) => this.portalEnded(p));
  }

  /** Where the last transaction end pgwarden learnt of was: what came after is in the current one. */
  private lastEnd: Position = [-1, Number.POSITIVE_INFINITY];

  /**
   * The cursors the server drops at a transaction's end. One declared without HOLD ends with its
   * transaction: kept, each took one of limits.maxNamesPerSession for good (10,000 rounds of
   * BEGIN; DECLARE; COMMIT left the session unable to PREPARE or DECLARE anything), and its name
   * could not be used for a portal (red team, round 48). One declared WITH HOLD outlives its
   * transaction only if that commits: a rollback (or a failed commit) drops those it declared.
   * A ROLLBACK TO SAVEPOINT, which answers as a ROLLBACK does, is no end (session.ts): what it
   * drops stays here until the transaction ends, refused by the server, never misjudged.
   */
  private forgetEndedCursors(end: Position, rolledBack: boolean): void {
    if (this.policyState.cursors.size === 0) return;
    this.mirror.cursors.forget(
      (c) =>
        c.declaredAt !== undefined &&
        before(c.declaredAt, end) &&
        (!c.hold || (rolledBack && before(this.lastEnd, c.declaredAt))),
    );
  }

  /**
   * A Close message. Protocol and SQL-level names share one name space on the server: Close of a
   * statement drops a PREPAREd one of that name too, and Close of a portal a DECLAREd cursor.
   */
  close(target: 'S' | 'P', name: string, log: ChangeLog): void {
    const m = this.mirror;
    if (target === 'S') dropFromBoth([m.statements, m.prepared], name, log, 0);
    else dropFromBoth([m.portals, m.cursors], name, log, 0);
  }

  /**
   * Applies a statement's changes to SQL-level names, recorded on the request that runs it; names
   * it makes were judged under the rules of `rulesVersion`.
   */
  applyEffects(
    effects: readonly SessionEffect[] | undefined,
    log: ChangeLog,
    rulesVersion: number,
    order: number,
  ): void {
    if (!effects) return;
    const m = this.mirror;
    for (const e of effects) {
      const at = e.statement;
      const keep =
        e.source &&
        this.kept.chars + sourceChars({ rulesVersion, source: e.source }) <= MAX_KEPT_SOURCE_CHARS;
      const entry = { rulesVersion, ...(keep ? { source: e.source } : {}) };
      if (e.prepare !== undefined) m.prepared.set(e.prepare, entry, log, at);
      // The server had no portal of that name if the DECLARE runs: one pgwarden still holds had
      // ended unseen (ROLLBACK TO SAVEPOINT, a COMMIT earlier in the pipeline), and an Execute of
      // the name would run the cursor as that portal's statement (red team, round 55).
      if (e.declareCursor !== undefined) m.portals.delete(e.declareCursor, log, at);
      if (e.declareCursor !== undefined)
        m.cursors.set(
          e.declareCursor,
          { ...entry, declaredAt: [order, at], ...(e.hold ? { hold: true as const } : {}) },
          log,
          at,
        );
      // SQL-level DEALLOCATE and CLOSE also drop protocol-level statements and portals: each pair
      // shares one name space on the server.
      if (e.deallocate) dropFromBoth([m.prepared, m.statements], e.deallocate, log, at);
      if (e.closeCursor) dropFromBoth([m.cursors, m.portals], e.closeCursor, log, at);
    }
  }
}

/** A place in the session's requests: a request's order, and a statement's index in it. */
type Position = readonly [order: number, statement: number];

function before(a: Position, b: Position): boolean {
  return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
}

/** The names in `m` besides the unnamed one (each session has that slot anyway). */
function named(m: ReadonlyMap<string, unknown>): number {
  return m.size - (m.has('') ? 1 : 0);
}

/** Drops one name (or all) from mirrored name spaces the server keeps as one. */
function dropFromBoth(
  spaces: readonly MirroredNames<unknown>[],
  which: string | { all: true },
  log: ChangeLog,
  at: number,
): void {
  for (const s of spaces) {
    if (typeof which === 'string') s.delete(which, log, at);
    else s.clear(log, at);
  }
}
