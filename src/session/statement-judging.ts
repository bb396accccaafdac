import type {
  Judge,
  JudgeContext,
  Judgement,
  StaleName,
  StatementSource,
  Verdict,
} from '../policy/verdict.js';
import type { Config } from '../config/schema.js';
import { Frontend } from '../protocol/codes.js';
import type { FrontendMessage } from '../protocol/frontend-decoder.js';
import * as fm from '../protocol/frontend-messages.js';
import type { JudgedStatement, SessionNames } from './names.js';
import type { Party } from './records.js';
import { judgedAlike, rulesChangedRefusal } from './refusals.js';

/**
 * Names judged again for one statement after a reload (judgedAgainAlike); a statement using more
 * of them is refused, and the agent prepares them again.
 */
const MAX_NAMES_JUDGED_AGAIN = 16;

/** Longer texts are looked up by shape on a judge thread, not on the event loop (judgingOffThread). */
const SHAPE_LOOKUP_ON_LOOP_CHARS = 8192;

/** What a session's judging needs of it. */
export interface JudgingHost {
  readonly deps: { readonly judge: Judge; readonly config: Config };
  readonly names: SessionNames;
  readonly party: Party;
  closed(): boolean;
  /** After an error in an extended-protocol batch the session skips messages until Sync. */
  skippingToSync(): boolean;
  /** Goes on with the client's messages: a judgement it waited for has arrived. */
  continueReading(): void;
}

/**
 * A statement looked up in the decision caches, or sent to the judge thread, and then its
 * judgement (see judgingOffThread).
 */
interface OffThreadJob {
  message: FrontendMessage;
  sql: string;
  mode: 'simple' | 'extended';
  /** The Parse message read whole, so it is read once. */
  parse?: fm.ParseMessage;
  judgement?: Judgement;
  /** The rules it was judged under: a reload since makes it no judgement of theirs. */
  rulesVersion: number;
}

/**
 * How one session has its statements judged: on the event loop from the decision caches, or on a
 * judge thread while its messages wait; again when the rules in force have changed since a
 * statement was prepared; and refused unread when too long.
 */
export class StatementJudging {
  /** Made once per session: identity and session state are the same objects for every statement. */
  private judgeContexts: Record<'simple' | 'extended', JudgeContext> | undefined;
  /** The rules in force when the session started: nothing it prepares is older. */
  private readonly bornUnder: number;
  /** The statement looked up or judged off the event loop for the message waiting, if any. */
  private offThread: OffThreadJob | undefined;

  constructor(private readonly host: JudgingHost) {
    this.bornUnder = this.rulesVersion;
  }

  /** The text of a Query, read already if it was looked up in the caches (judgingOffThread). */
  queryText(m: FrontendMessage): string {
    const o = this.offThread;
    return o?.message === m ? o.sql : fm.readQuery(m.buffer, m.bodyStart, m.end);
  }

  /** A Parse message, read already if it was looked up in the caches (judgingOffThread). */
  parseMessage(m: FrontendMessage): fm.ParseMessage {
    const o = this.offThread;
    return (o?.message === m && o.parse) || fm.readParse(m.buffer, m.bodyStart, m.end);
  }

  /** `m` has been handled: a judgement kept for it is no longer needed. */
  handled(m: FrontendMessage): void {
    if (this.offThread?.message === m) this.offThread = undefined;
  }

  /** A text over limits.maxQueryBytes never gets here: refuseOversized refused it unread. */
  judge(sql: string, mode: 'simple' | 'extended'): Judgement {
    const o = this.offThread;
    if (o?.judgement && o.mode === mode && o.sql === sql && o.rulesVersion === this.rulesVersion)
      return o.judgement;
    const { judge } = this.host.deps;
    let judgement = judge.judge(sql, this.contextFor(mode));
    // Judged again here only where a text of its length would be judged on the event loop anyway;
    // otherwise judgingOffThread did it, on the judge thread.
    for (let i = 0; i < MAX_NAMES_JUDGED_AGAIN; i++) {
      const stale = this.staleSource(judgement.verdict);
      if (!stale || !this.judgedOnLoop(stale.source.sql)) break;
      const fresh = judge.judge(stale.source.sql, this.contextFor(stale.source.protocol));
      if (!this.judgedAgainAlike(stale, fresh.verdict)) break;
      judgement = judge.judge(sql, this.contextFor(mode));
    }
    return judgement;
  }

  /**
   * A name the verdict refused because it was prepared or declared under rules since replaced,
   * with its PREPARE or DECLARE, which the rules in force may forward alike (judgedAgainAlike).
   */
  private staleSource(v: Verdict): { name: StaleName; source: StatementSource } | undefined {
    if (v.kind !== 'deny' || !v.staleName) return undefined;
    const entry = this.host.names.sqlName(v.staleName);
    if (!entry?.source || entry.rulesVersion === this.rulesVersion) return undefined;
    return { name: v.staleName, source: entry.source };
  }

  /**
   * Whether the rules in force forward a stale name's PREPARE or DECLARE (judged again: `fresh`)
   * as it was forwarded: then the server holds what they would prepare, and the name is theirs.
   * A statement using it is judged again, and runs if they allow it.
   */
  private judgedAgainAlike(stale: { name: StaleName; source: StatementSource }, fresh: Verdict): boolean {
    const { source } = stale;
    const forwarded = fresh.kind === 'allow' ? source.sql : fresh.kind === 'rewrite' ? fresh.sql : undefined;
    if (forwarded !== source.forwarded) return false;
    this.host.names.judgedAlike(stale.name, this.rulesVersion);
    return true;
  }

  private judgedOnLoop(sql: string): boolean {
    return (
      !this.host.deps.judge.judgeOffThread || sql.length <= this.host.deps.config.limits.judgeOffThreadBytes
    );
  }

  /** judge() on the judge thread, names judged again included. */
  private async judgedOffThread(
    sql: string,
    mode: 'simple' | 'extended',
    stillWanted: () => boolean,
  ): Promise<Judgement> {
    const judgeOffThread = this.host.deps.judge.judgeOffThread!.bind(this.host.deps.judge);
    let judgement = await judgeOffThread(sql, this.contextFor(mode), stillWanted);
    for (let i = 0; i < MAX_NAMES_JUDGED_AGAIN && stillWanted(); i++) {
      const stale = this.staleSource(judgement.verdict);
      if (!stale) break;
      const fresh = await judgeOffThread(
        stale.source.sql,
        this.contextFor(stale.source.protocol),
        stillWanted,
      );
      // The thread answers under the rules in force when it answers (judge-thread-client.ts).
      if (!this.judgedAgainAlike(stale, fresh.verdict)) break;
      judgement = await judgeOffThread(sql, this.contextFor(mode), stillWanted);
    }
    return judgement;
  }

  /** Which rules are in force (Judge.rulesVersion). */
  get rulesVersion(): number {
    return this.host.deps.judge.rulesVersion ?? 0;
  }

  /**
   * A refusal if `statement` was judged under rules since replaced and the rules in force judge it
   * otherwise: the server runs the SQL its Parse forwarded, which they may refuse or rewrite
   * differently. Judged alike, it is theirs from now on.
   */
  staleRefusal(statement: JudgedStatement): Verdict | undefined {
    const now = this.rulesVersion;
    const { names } = this.host;
    if (statement.rulesVersion === now && !names.namesChangedFor(statement)) return undefined;
    const fresh = this.judge(statement.sql, 'extended');
    if (judgedAlike(fresh.verdict, statement.judgement.verdict)) {
      statement.rulesVersion = now;
      if (statement.namesVersion !== undefined) statement.namesVersion = names.version;
      return undefined;
    }
    return fresh.verdict.kind === 'deny' ? fresh.verdict : rulesChangedRefusal(statement.name);
  }

  /**
   * The statement a Bind or Execute would run, if it was judged under rules since replaced, or
   * against names since changed.
   */
  private staleStatementOf(m: FrontendMessage): JudgedStatement | undefined {
    if (this.rulesVersion === this.bornUnder && !this.host.names.namesDependent) return undefined;
    const statement =
      m.code === Frontend.Bind
        ? this.host.names.statements.get(fm.readBindNames(m.buffer, m.bodyStart, m.end).statement)
        : m.code === Frontend.Execute
          ? this.host.names.livePortal(fm.readExecute(m.buffer, m.bodyStart, m.end).portal)?.statement
          : undefined;
    return statement &&
      (statement.rulesVersion !== this.rulesVersion || this.host.names.namesChangedFor(statement))
      ? statement
      : undefined;
  }

  private contextFor(mode: 'simple' | 'extended'): JudgeContext {
    const maxStatements = this.host.deps.config.limits.maxStatementsPerQuery;
    const session = this.host.names.policyState;
    const identity = this.host.party.identity!;
    this.judgeContexts ??= {
      simple: { identity, protocol: 'simple', session, maxStatements },
      extended: { identity, protocol: 'extended', session, maxStatements },
    };
    return this.judgeContexts[mode];
  }

  /**
   * A statement looked up in the decision caches, or sent to the judge thread, and then its
   * judgement (see judgingOffThread).
   */
  /**
   * Whether a Query or Parse waits for its judgement from the judge thread. Judging on the event
   * loop holds every session's messages for as long as it takes (a second for an INSERT of
   * thousands of rows into a parent-scoped table; 24 agents sending new 1 KB statements without
   * pause held a SELECT 1 for 300 ms): a statement the decision caches do not hold is judged on
   * the judge thread while this session's messages wait, in order, and everyone else's go on. The
   * session's state cannot change meanwhile: every earlier pipeline that changed it has been
   * answered (mustWait) and nothing more of this session is forwarded.
   */
  judgingOffThread(m: FrontendMessage): boolean {
    const { judge } = this.host.deps;
    if (!judge.judgeOffThread) return false;
    if (this.host.skippingToSync()) return false;
    const o = this.offThread;
    if (o?.message === m) {
      if (o.judgement === undefined) return true;
      if (o.rulesVersion === this.rulesVersion) return false;
      // Answered under rules replaced since: asked again, off the event loop, under the new ones.
    }
    let mode: 'simple' | 'extended' = 'extended';
    let parse: fm.ParseMessage | undefined;
    let sql: string;
    const { judgeOffThreadBytes } = this.host.deps.config.limits;
    if (m.code === Frontend.Query || m.code === Frontend.Parse) {
      if (m.end - m.bodyStart <= judgeOffThreadBytes) return this.longStaleSourceOffThread(m);
      // Refused unread (refuseOversized).
      if (this.oversizedSql(m) !== undefined) return false;
      mode = m.code === Frontend.Query ? 'simple' : 'extended';
      parse = mode === 'extended' ? fm.readParse(m.buffer, m.bodyStart, m.end) : undefined;
      sql = parse ? parse.query : fm.readQuery(m.buffer, m.bodyStart, m.end);
    } else {
      // A Bind or Execute of a statement judged under replaced rules: judged again (staleRefusal).
      const stale = this.staleStatementOf(m);
      if (!stale) return false;
      sql = stale.sql;
    }
    return this.startOffThread(m, sql, mode, parse);
  }

  /**
   * A text short enough to judge on the event loop that uses a name prepared or declared before a
   * reload, from a text too long to judge there again (EXECUTE p, p's PREPARE 100 KB): judged on
   * the judge thread, names included, rather than refused for want of a place to judge them.
   */
  private longStaleSourceOffThread(m: FrontendMessage): boolean {
    if (this.rulesVersion === this.bornUnder) return false;
    const mode = m.code === Frontend.Query ? 'simple' : 'extended';
    const parse = mode === 'extended' ? fm.readParse(m.buffer, m.bodyStart, m.end) : undefined;
    const sql = parse ? parse.query : fm.readQuery(m.buffer, m.bodyStart, m.end);
    const judgement = this.host.deps.judge.judge(sql, this.contextFor(mode));
    const stale = this.staleSource(judgement.verdict);
    if (!stale) {
      this.offThread = { message: m, sql, mode, parse, judgement, rulesVersion: this.rulesVersion };
      return false;
    }
    // A short stale source is judged again on the loop, by judge().
    if (this.judgedOnLoop(stale.source.sql)) return false;
    return this.startOffThread(m, sql, mode, parse, false);
  }

  private startOffThread(
    m: FrontendMessage,
    sql: string,
    mode: 'simple' | 'extended',
    parse: fm.ParseMessage | undefined,
    lookUp = true,
  ): boolean {
    const { judge } = this.host.deps;
    const ctx = this.contextFor(mode);
    // A long text is looked up by its exact text only: finding it by shape means lexing it on
    // the event loop every session shares, at 3 ms per 120 KB; the judge threads do that in the
    // tenant's fair share (4 sessions sending 120 KB refusals held another tenant's cached SELECT
    // for 160 ms at the median; red team, round 11).
    const cached = lookUp ? judge.lookup?.(sql, ctx, sql.length > SHAPE_LOOKUP_ON_LOOP_CHARS) : undefined;
    const job: OffThreadJob = {
      message: m,
      sql,
      mode,
      parse,
      judgement: cached,
      rulesVersion: this.rulesVersion,
    };
    this.offThread = job;
    if (cached) return false;
    void this.judgedOffThread(sql, mode, () => !this.host.closed()).then((judgement) => {
      if (this.offThread !== job || this.host.closed()) return;
      job.judgement = judgement;
      // The thread answers with the rules in force when it answers (judge-thread-client.ts).
      job.rulesVersion = this.rulesVersion;
      this.host.continueReading();
    });
    return true;
  }

  /** The length in bytes of a Query's or Parse's SQL text when it exceeds limits.maxQueryBytes. */
  oversizedSql(m: FrontendMessage): number | undefined {
    const max = this.host.deps.config.limits.maxQueryBytes;
    // The body holds the text and a few bytes more: a body within the limit needs no closer look.
    if (m.end - m.bodyStart <= max) return undefined;
    const text = fm.sqlTextBounds(m.code === Frontend.Parse, m.buffer, m.bodyStart, m.end);
    const bytes = text.end - text.start;
    return bytes > max ? bytes : undefined;
  }
}
