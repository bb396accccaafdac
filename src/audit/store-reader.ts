import pg from 'pg';
import { FACET_PREFIX } from './facets.js';
import { whereClause, type DecisionFilter } from './filter.js';

/** A decision as responders see it: the hashed record, its outcome, and its place in the chain. */
export interface DecisionView extends Record<string, unknown> {
  readonly id: string;
  readonly outcome: Record<string, unknown> | null;
  readonly chain: { readonly instance: string; readonly seq: number; readonly hash: string };
}

export interface Page {
  readonly items: DecisionView[];
  /** Opaque; pass back as `cursor` for the next page. Null on the last page. */
  readonly nextCursor: string | null;
}

export type AggregateBy = 'verdict' | 'human' | 'agent' | 'tenant' | 'rule' | 'table' | 'flag' | 'kind';
export const AGGREGATE_BY: readonly AggregateBy[] = [
  'verdict',
  'human',
  'agent',
  'tenant',
  'rule',
  'table',
  'flag',
  'kind',
];
export type Interval = 'minute' | 'hour' | 'day';

const GROUP_EXPR: Record<Exclude<AggregateBy, 'rule' | 'table' | 'flag'>, string> = {
  verdict: 'd.verdict',
  human: 'd.human',
  agent: 'd.agent',
  tenant: 'd.tenant',
  kind: 'd.kind',
};

const FROM = 'pgwarden_decisions d LEFT JOIN pgwarden_outcomes o ON o.record_id = d.id';

// The cursor keeps the stored microseconds; a JS Date would round them to milliseconds.
const COLUMNS = `d.id, d.instance_id, d.chain_seq, d.hash, d.body, coalesce(d.outcome_body, o.body) AS outcome_body,
  to_char(d.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS tcur`;

/**
 * The stored text one page of decisions holds, about: a page stops at `limit` records or once
 * this much is read, whichever comes first (it always holds at least one record). A record keeps
 * the agent's statement whole, so a page of 1,000 records of 1 MiB statements would have read a
 * gigabyte into the process that also runs the proxy.
 */
export const PAGE_BYTES = 4 * 1024 * 1024;

// The stored size of a row, read from its header: octet_length does not detoast.
const SIZE = 'octet_length(d.body) + coalesce(octet_length(coalesce(d.outcome_body, o.body)), 0)';

/**
 * Up to `limit` rows of `from … where` in `order`, cut once PAGE_BYTES are read; `more` on the
 * last row says whether any row follows it (read ahead by one, in the same scan).
 */
function pageSql(order: string, fromWhere: string, limit: string, bytes: string, extra = ''): string {
  return `SELECT * FROM (
    SELECT ${COLUMNS}${extra}, sum(${SIZE}) OVER w - (${SIZE}) AS before, lead(d.id) OVER w IS NOT NULL AS more
    FROM ${fromWhere}
    WINDOW w AS (ORDER BY ${order} ROWS UNBOUNDED PRECEDING)
    ORDER BY ${order} LIMIT ${limit}
  ) p WHERE p.before < ${bytes}`;
}

interface Row {
  id: string;
  instance_id: string;
  chain_seq: string;
  hash: string;
  body: string;
  outcome_body: string | null;
  tcur: string;
  more?: boolean;
}

function view(r: Row): DecisionView {
  const record = JSON.parse(r.body) as Record<string, unknown>;
  return {
    ...record,
    id: r.id,
    outcome: r.outcome_body === null ? null : (JSON.parse(r.outcome_body) as Record<string, unknown>),
    chain: { instance: r.instance_id, seq: Number(r.chain_seq), hash: r.hash },
  };
}

function encodeCursor(r: Row): string {
  return Buffer.from(JSON.stringify([r.tcur, r.id])).toString('base64url');
}

export class BadCursorError extends Error {}

function decodeCursor(c: string): [string, string] {
  try {
    const v = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as unknown;
    const ok = (x: unknown): x is string => typeof x === 'string' && !x.includes('\0');
    if (Array.isArray(v) && v.length === 2 && ok(v[0]) && ok(v[1]) && !Number.isNaN(Date.parse(v[0])))
      return [v[0], v[1]];
  } catch {
    // fall through
  }
  throw new BadCursorError('invalid cursor');
}

/** Read access to the audit store for the API and the CLI. Newest first, keyset-paginated. */
export class AuditReader {
  readonly pool: pg.Pool;
  readonly #pageBytes: number;

  constructor(url: string, max = 4, pageBytes = PAGE_BYTES) {
    this.#pageBytes = pageBytes;
    this.pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 5000 });
    // An idle connection dying (store restart) must not take the process down.
    this.pool.on('error', () => {});
  }

  async search(f: DecisionFilter, opts: { limit: number; cursor?: string | undefined }): Promise<Page> {
    const params: unknown[] = [];
    let where = whereClause(f, params);
    if (opts.cursor) {
      const [t, id] = decodeCursor(opts.cursor);
      params.push(t, id);
      where += ` AND (d.time, d.id) < ($${params.length - 1}::timestamptz, $${params.length})`;
    }
    params.push(opts.limit, this.#pageBytes);
    const n = params.length;
    const { rows } = await this.pool.query<Row>(
      pageSql('d.time DESC, d.id DESC', `${FROM} WHERE ${where}`, `$${n - 1}`, `$${n}`),
      params,
    );
    const last = rows.at(-1);
    return { items: rows.map(view), nextCursor: last?.more ? encodeCursor(last) : null };
  }

  async get(id: string): Promise<DecisionView | null> {
    const { rows } = await this.pool.query<Row>(`SELECT ${COLUMNS} FROM ${FROM} WHERE d.id = $1`, [id]);
    return rows[0] ? view(rows[0]) : null;
  }

  /**
   * A session in the order it happened, by its own sequence numbers (not by clock), a page at a
   * time: records after `after` (a seq), at most `limit`, and where the next page starts. One
   * agent's session of 4,000 statements of 128 KiB each, read whole, took the process's heap
   * (and the proxy in it) down at one responder's request (red team, round 43).
   */
  async session(
    sessionId: string,
    opts: { after?: number | undefined; limit: number },
  ): Promise<{ items: DecisionView[]; next: number | null }> {
    const { rows } = await this.pool.query<Row & { seq: number }>(
      pageSql('d.seq, d.chain_seq', `${FROM} WHERE d.session_id = $1 AND d.seq > $2`, '$3', '$4', ', d.seq'),
      [sessionId, opts.after ?? -1, opts.limit, this.#pageBytes],
    );
    const last = rows.at(-1);
    return { items: rows.map(view), next: last?.more ? last.seq : null };
  }

  /** A whole session, page by page (the CLI's replay: the responder's own process). */
  async wholeSession(sessionId: string, pageSize = 200): Promise<DecisionView[]> {
    const all: DecisionView[] = [];
    let after: number | undefined;
    for (;;) {
      const page = await this.session(sessionId, { after, limit: pageSize });
      all.push(...page.items);
      if (page.next === null) return all;
      after = page.next;
    }
  }

  async aggregate(
    by: AggregateBy,
    f: DecisionFilter,
    limit = 100,
  ): Promise<{ key: string | null; count: number }[]> {
    const params: unknown[] = [];
    const where = whereClause(f, params);
    let sql: string;
    if (by === 'rule' || by === 'table' || by === 'flag') {
      // List-valued: counted from the facets, one row per value.
      params.push(FACET_PREFIX[by]);
      const prefix = `$${params.length}::text`;
      sql = `SELECT substr(fc.f, length(${prefix}) + 1) AS key, count(*) AS count
        FROM ${FROM} CROSS JOIN LATERAL unnest(d.facets) AS fc(f)
        WHERE ${where} AND left(fc.f, length(${prefix})) = ${prefix}`;
    } else {
      sql = `SELECT ${GROUP_EXPR[by]} AS key, count(*) AS count FROM ${FROM} WHERE ${where}`;
    }
    params.push(limit);
    const { rows } = await this.pool.query<{ key: string | null; count: string }>(
      `${sql} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $${params.length}`,
      params,
    );
    return rows.map((r) => ({ key: r.key, count: Number(r.count) }));
  }

  /** Counts per time bucket, split by verdict (records without a verdict count as `other`). */
  async overTime(
    interval: Interval,
    f: DecisionFilter,
  ): Promise<{ bucket: string; allow: number; rewrite: number; deny: number; other: number }[]> {
    const params: unknown[] = [interval];
    const where = whereClause(f, params);
    const { rows } = await this.pool.query<{
      bucket: Date;
      allow: string;
      rewrite: string;
      deny: string;
      other: string;
    }>(
      `SELECT date_trunc($1, d.time) AS bucket,
         count(*) FILTER (WHERE d.verdict = 'allow') AS allow,
         count(*) FILTER (WHERE d.verdict = 'rewrite') AS rewrite,
         count(*) FILTER (WHERE d.verdict = 'deny') AS deny,
         count(*) FILTER (WHERE d.verdict IS NULL) AS other
       FROM ${FROM} WHERE ${where} GROUP BY 1 ORDER BY 1 LIMIT 10000`,
      params,
    );
    return rows.map((r) => ({
      bucket: r.bucket.toISOString(),
      allow: Number(r.allow),
      rewrite: Number(r.rewrite),
      deny: Number(r.deny),
      other: Number(r.other),
    }));
  }

  /** Every matching decision, newest first, a page at a time (for exports). */
  async *all(f: DecisionFilter, max: number, pageSize = 1000): AsyncGenerator<DecisionView> {
    let cursor: string | undefined;
    let n = 0;
    while (n < max) {
      const page = await this.search(f, { limit: Math.min(pageSize, max - n), cursor });
      for (const item of page.items) yield item;
      n += page.items.length;
      if (!page.nextCursor) return;
      cursor = page.nextCursor;
    }
  }

  async instances(): Promise<{ instance: string; chainSeq: number; updatedAt: string }[]> {
    const { rows } = await this.pool.query<{ instance_id: string; chain_seq: string; updated_at: Date }>(
      'SELECT instance_id, chain_seq, updated_at FROM pgwarden_chain_heads ORDER BY updated_at DESC',
    );
    return rows.map((r) => ({
      instance: r.instance_id,
      chainSeq: Number(r.chain_seq),
      updatedAt: r.updated_at.toISOString(),
    }));
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
