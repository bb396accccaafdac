import type pg from 'pg';
import { GENESIS, anchorMac, headMac, instanceMac, linkHash, linkMac } from './chain.js';
import { facetsOf } from './facets.js';

/**
 * - inserted: a row outside the verified chain (a position below the anchor or above the head, or
 *   outcome columns without a chain position) that the API would still show;
 * - unauthenticated: an HMAC key was given but a head or anchor carries no MAC (written before
 *   heads and anchors were keyed): it cannot be told from one rewritten by hand.
 */
export type ProblemKind =
  'altered' | 'deleted' | 'reordered' | 'forged' | 'truncated' | 'inserted' | 'unauthenticated';

export interface Problem {
  readonly kind: ProblemKind;
  /** Chain position where the chain first breaks. */
  readonly chainSeq: number;
  /** The decision the broken link belongs to (for `deleted`, the one found in the gap's place). */
  readonly recordId: string | null;
  readonly message: string;
}

export interface InstanceReport {
  readonly instance: string;
  readonly ok: boolean;
  /** Links checked. */
  readonly checked: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly problem: Problem | null;
  /**
   * NDJSON only: lines outside the chain (chainSeq 0, written while the spool was full with
   * onFull: ndjson-only). Nothing proves they are unaltered, or that none were removed.
   */
  readonly unchained?: number;
  /**
   * Where the chain starts after retention (absent or null: at its first link). `cutoff` is the
   * retention cutoff that moved it: every deleted entry was older (null for anchors written
   * before anchors recorded it). A responder compares it with the retention period.
   */
  readonly anchor?: { readonly chainSeq: number; readonly cutoff: string | null } | null;
}

export interface VerifyOptions {
  /** Links read per query. */
  readonly pageSize?: number;
  /**
   * audit.store.retentionDays when known: an anchor whose cutoff is newer than this allows is
   * reported (records deleted before their time). 0 or absent: not checked.
   */
  readonly retentionDays?: number;
  /** The time to check the retention period against (tests). */
  readonly now?: Date;
}

/** Clock differences between the store and the machine running verify. */
const RETENTION_SLACK_MS = 10 * 60_000;

export interface LinkRow {
  seq: string;
  prev: string;
  hash: string;
  mac: string | null;
  body: string;
  type: 'decision' | 'outcome';
  id: string;
  /** Null for an outcome kept in its decision's row: reading it from the body would need jsonb. */
  time: Date | null;
  kind: string | null;
  session_id: string | null;
  rseq: number | null;
  human: string | null;
  agent: string | null;
  tenant: string | null;
  verdict: string | null;
  sql: string | null;
  facets: string[] | null;
  command: string | null;
  rows: string | null;
  upstream_micros: string | null;
  sqlstate: string | null;
}

// One page of links: positions [$2, $3) of one instance, from the three places a link can be.
export const LINKS = `
SELECT chain_seq AS seq, prev_hash AS prev, hash, mac, body, 'decision' AS type, id, time, kind,
  session_id, seq AS rseq, human, agent, tenant, verdict, sql, facets,
  NULL AS command, NULL::text AS rows, NULL::text AS upstream_micros, NULL AS sqlstate
FROM pgwarden_decisions WHERE instance_id = $1 AND chain_seq >= $2 AND chain_seq < $3
UNION ALL
SELECT outcome_chain_seq, outcome_prev_hash, outcome_hash, outcome_mac, outcome_body, 'outcome', id,
  NULL::timestamptz, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  command, rows::text, upstream_micros::text, sqlstate
FROM pgwarden_decisions WHERE instance_id = $1 AND outcome_chain_seq >= $2 AND outcome_chain_seq < $3
UNION ALL
SELECT chain_seq, prev_hash, hash, mac, body, 'outcome', record_id, time, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, command, rows::text, upstream_micros::text, sqlstate
FROM pgwarden_outcomes WHERE instance_id = $1 AND chain_seq >= $2 AND chain_seq < $3
ORDER BY 1`;

// Where the chain continues after a gap (or null at its end).
const NEXT = `
SELECT min(s) AS seq FROM (
  SELECT min(chain_seq) AS s FROM pgwarden_decisions WHERE instance_id = $1 AND chain_seq >= $2
  UNION ALL SELECT min(outcome_chain_seq) FROM pgwarden_decisions WHERE instance_id = $1 AND outcome_chain_seq >= $2
  UNION ALL SELECT min(chain_seq) FROM pgwarden_outcomes WHERE instance_id = $1 AND chain_seq >= $2) m`;

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
const sameSet = (a: readonly string[] | null, b: readonly string[]): boolean =>
  same([...new Set(a ?? [])].sort(), [...new Set(b)].sort());

/**
 * A timestamp column as milliseconds. node-postgres reads 'infinity' as a number, not a Date: an
 * edited time must be reported as altered, not crash verify into "could not read the store".
 */
function millis(t: unknown): number | null {
  if (t instanceof Date) return t.getTime();
  return typeof t === 'number' ? t : null;
}

/** An ISO time for a report, or the column's own text when it is not a date ('infinity'). */
function iso(t: unknown): string {
  return t instanceof Date && !Number.isNaN(t.getTime()) ? t.toISOString() : String(t);
}

/** A row of pgwarden_chain_anchors. */
export interface AnchorRow {
  chain_seq: string;
  prev_hash: string;
  cutoff: Date | null;
  mac: string | null;
}

/** The MAC an anchor row carries when retention wrote it with `key` (chain.ts anchorMac). */
export function expectedAnchorMac(a: AnchorRow, instance: string, key: string): string {
  return anchorMac(key, instance, Number(a.chain_seq), a.prev_hash, a.cutoff === null ? null : iso(a.cutoff));
}

/** The searchable columns must say what the hashed body says, or searches could be steered. */
function columnMismatch(row: LinkRow, body: Record<string, unknown>, instance: string): string | null {
  if (row.type === 'decision') {
    const checks: [string, unknown, unknown][] = [
      ['id', row.id, body.id],
      ['time', millis(row.time), Date.parse(String(body.time))],
      ['kind', row.kind, body.kind],
      ['session_id', row.session_id, body.sessionId],
      ['seq', row.rseq, body.seq],
      ['human', row.human, body.human],
      ['agent', row.agent, body.agent],
      ['tenant', row.tenant, body.tenant],
      ['verdict', row.verdict, body.verdict],
      ['sql', row.sql, body.sql],
    ];
    for (const [col, a, b] of checks) if (!same(a, b)) return col;
    if (!sameSet(row.facets, facetsOf(body, instance))) return 'facets';
    return null;
  }
  const checks: [string, unknown, unknown][] = [
    ['record_id', row.id, body.recordId],
    ['command', row.command, body.command],
    ['rows', row.rows === null ? null : Number(row.rows), body.rows],
    [
      'upstream_micros',
      row.upstream_micros === null ? null : Number(row.upstream_micros),
      body.upstreamMicros,
    ],
    ['sqlstate', row.sqlstate, body.sqlstate],
  ];
  // An outcome kept in its decision's row has no time column of its own: the body's is the one.
  if (row.time !== null) checks.push(['time', millis(row.time), Date.parse(String(body.time))]);
  for (const [col, a, b] of checks) if (!same(a, b)) return col;
  return null;
}

// Rows the chain walk cannot reach, but the API would show: decisions below the anchor (or at a
// position no chain has) other than those retention keeps for an outcome after the anchor,
// outcome links below the anchor, and outcome columns with no chain position.
const OUTSIDE = `
SELECT 'decision' AS what, id, chain_seq::text AS seq FROM pgwarden_decisions d
WHERE instance_id = $1 AND chain_seq < $2 AND (chain_seq <= 0 OR NOT (
  coalesce(outcome_chain_seq, 0) >= $2
  OR EXISTS (SELECT 1 FROM pgwarden_outcomes o WHERE o.record_id = d.id AND o.instance_id = $1 AND o.chain_seq >= $2)))
UNION ALL
SELECT 'outcome', id, outcome_chain_seq::text FROM pgwarden_decisions
WHERE instance_id = $1 AND outcome_chain_seq < $2
UNION ALL
SELECT 'outcome', record_id, chain_seq::text FROM pgwarden_outcomes WHERE instance_id = $1 AND chain_seq < $2
UNION ALL
SELECT 'unchained outcome', id, NULL FROM pgwarden_decisions
WHERE instance_id = $1 AND outcome_chain_seq IS NULL AND (outcome_body IS NOT NULL
  OR outcome_prev_hash IS NOT NULL OR outcome_hash IS NOT NULL OR outcome_mac IS NOT NULL
  OR command IS NOT NULL OR rows IS NOT NULL OR upstream_micros IS NOT NULL OR sqlstate IS NOT NULL)
LIMIT 1`;

// Decisions retention keeps below the anchor (their outcome lies after it): checked on their own.
const KEPT_BELOW = `
SELECT chain_seq AS seq, prev_hash AS prev, hash, mac, body, 'decision' AS type, id, time, kind,
  session_id, seq AS rseq, human, agent, tenant, verdict, sql, facets,
  NULL AS command, NULL::text AS rows, NULL::text AS upstream_micros, NULL AS sqlstate
FROM pgwarden_decisions WHERE instance_id = $1 AND chain_seq > 0 AND chain_seq < $2
ORDER BY chain_seq`;

// An outcome in the chain whose decision is gone: one retention kept below the anchor for it (a
// long statement) is outside the walk, and deleting it left no gap (red team, round 26).
const ORPHAN_OUTCOME = `
SELECT o.record_id AS id, o.chain_seq::text AS seq FROM pgwarden_outcomes o
WHERE o.instance_id = $1 AND o.chain_seq >= $2
  AND NOT EXISTS (SELECT 1 FROM pgwarden_decisions d WHERE d.id = o.record_id)
LIMIT 1`;

const ANY_ROW = `
SELECT EXISTS (SELECT 1 FROM pgwarden_decisions WHERE instance_id = $1)
  OR EXISTS (SELECT 1 FROM pgwarden_outcomes WHERE instance_id = $1) AS any`;

/**
 * Walks one instance's chain in the store from its anchor and reports the first break:
 * - altered: a body (or a searchable column) no longer matches its hash;
 * - deleted: chain positions are missing (also at the end, against the recorded head), the head
 *   itself is missing, a registered instance has no chain left, or the anchor is newer than the
 *   retention period allows;
 * - reordered: a link is intact but does not follow the one before it;
 * - forged: hashes are consistent but an HMAC (of a link, the head, the anchor or the registry
 *   entry) is wrong;
 * - inserted: a row outside the chain (below the anchor, above the head, an outcome without a
 *   chain position);
 * - unauthenticated: with a key, a head or anchor without a MAC (written before they had one).
 */
export async function verifyInstance(
  pool: pg.Pool,
  instance: string,
  hmacKey: string | undefined,
  opts: VerifyOptions = {},
): Promise<InstanceReport> {
  // One snapshot for the whole walk: a delivery (new rows and a new head) or a retention run
  // committing meanwhile must not look like entries added past the head or deleted mid-chain.
  const c = await pool.connect();
  try {
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    return await verifyIn(c, instance, hmacKey, opts);
  } finally {
    await c.query('COMMIT').catch(() => {});
    c.release();
  }
}

async function verifyIn(
  db: pg.ClientBase,
  instance: string,
  hmacKey: string | undefined,
  opts: VerifyOptions,
): Promise<InstanceReport> {
  const pageSize = opts.pageSize ?? 5000;
  const anchorQ = await db.query<AnchorRow>(
    'SELECT chain_seq, prev_hash, cutoff, mac FROM pgwarden_chain_anchors WHERE instance_id = $1',
    [instance],
  );
  const headQ = await db.query<{ chain_seq: string; hash: string; mac: string | null }>(
    'SELECT chain_seq, hash, mac FROM pgwarden_chain_heads WHERE instance_id = $1',
    [instance],
  );
  const registryQ = await db.query<{ mac: string | null; first_seen: Date }>(
    'SELECT mac, first_seen FROM pgwarden_instances WHERE instance_id = $1',
    [instance],
  );
  const anchor = anchorQ.rows[0];
  const head = headQ.rows[0];
  const registered = registryQ.rows[0];
  const start = anchor ? Number(anchor.chain_seq) : 1;
  let expected = start;
  let prevHash = anchor?.prev_hash ?? GENESIS;
  let checked = 0;
  const report = (problem: Problem | null): InstanceReport => ({
    instance,
    ok: problem === null,
    checked,
    firstSeq: start,
    lastSeq: expected - 1,
    problem,
    anchor: anchor ? { chainSeq: start, cutoff: anchor.cutoff === null ? null : iso(anchor.cutoff) } : null,
  });
  const bookkeeping = (kind: ProblemKind, chainSeq: number, message: string): InstanceReport =>
    report({ kind, chainSeq, recordId: null, message });

  // The rows that say where the chain starts and ends must be the writer's own.
  if (hmacKey !== undefined && registered?.mac != null && registered.mac !== instanceMac(hmacKey, instance))
    return bookkeeping('forged', 0, `the registry entry of instance ${instance} has a wrong HMAC`);
  if (anchor && hmacKey !== undefined) {
    if (anchor.mac === null)
      return bookkeeping(
        'unauthenticated',
        start,
        `the chain's anchor (chain seq ${start}) has no HMAC: written before anchors were keyed, or by hand; compare with the SIEM copy`,
      );
    if (anchor.mac !== expectedAnchorMac(anchor, instance, hmacKey))
      return bookkeeping(
        'forged',
        start,
        `the HMAC of the chain's anchor (chain seq ${start}) is wrong: it was moved without the key, hiding the entries before it`,
      );
  }
  if (head && hmacKey !== undefined) {
    const seq = Number(head.chain_seq);
    if (head.mac === null)
      return bookkeeping(
        'unauthenticated',
        seq,
        `the delivered head (chain seq ${seq}) has no HMAC: written before heads were keyed, or by hand; the next delivery keys it`,
      );
    if (head.mac !== headMac(hmacKey, instance, seq, head.hash))
      return bookkeeping(
        'forged',
        seq,
        `the HMAC of the delivered head (chain seq ${seq}) is wrong: it was moved without the key, hiding the entries after it`,
      );
  }
  const retentionDays = opts.retentionDays ?? 0;
  if (anchor?.cutoff && retentionDays > 0) {
    const allowed = (opts.now ?? new Date()).getTime() - retentionDays * 86_400_000;
    if (!((millis(anchor.cutoff) ?? Infinity) <= allowed + RETENTION_SLACK_MS))
      return bookkeeping(
        'deleted',
        start,
        `the chain's anchor (chain seq ${start}) says entries before ${iso(anchor.cutoff)} were deleted, ` +
          `but a retention of ${retentionDays} days deletes only entries before ${new Date(allowed).toISOString()}`,
      );
  }

  const checkLink = (row: LinkRow): Problem | null => {
    const seq = Number(row.seq);
    const at = { chainSeq: seq, recordId: row.id };
    if (linkHash(row.prev, row.body) !== row.hash) {
      return {
        kind: 'altered',
        ...at,
        message: `the ${row.type} of record ${row.id} (chain seq ${seq}) does not match its hash`,
      };
    }
    if (seq > expected) {
      return {
        kind: 'deleted',
        chainSeq: expected,
        recordId: row.id,
        message: `chain seq ${expected}..${seq - 1} missing before the ${row.type} of record ${row.id}`,
      };
    }
    if (seq < expected)
      return { kind: 'reordered', ...at, message: `chain seq ${seq} appears twice (record ${row.id})` };
    if (row.prev !== prevHash) {
      return {
        kind: 'reordered',
        ...at,
        message: `the ${row.type} of record ${row.id} is intact but does not follow chain seq ${seq - 1}: moved, or a neighbour was replaced`,
      };
    }
    return macAndColumns(row, hmacKey, instance);
  };
  while (true) {
    let { rows } = await db.query<LinkRow>(LINKS, [instance, expected, expected + pageSize]);
    if (rows.length === 0) {
      // A gap at least a page long, or the end of the chain.
      const next = (await db.query<{ seq: string | null }>(NEXT, [instance, expected])).rows[0]?.seq;
      if (next === null || next === undefined) break;
      rows = (await db.query<LinkRow>(LINKS, [instance, Number(next), Number(next) + pageSize])).rows;
    }
    for (const row of rows) {
      const problem = checkLink(row);
      if (problem) return report(problem);
      prevHash = row.hash;
      expected = Number(row.seq) + 1;
      checked++;
    }
  }

  // A chain deleted whole: the registry remembers the instance.
  if (
    checked === 0 &&
    !head &&
    !anchor &&
    !(await db.query<{ any: boolean }>(ANY_ROW, [instance])).rows[0]?.any
  ) {
    return registered
      ? bookkeeping(
          'deleted',
          1,
          `instance ${instance} is registered (first seen ${iso(registered.first_seen)}) but its whole chain is missing: rows, outcomes and head`,
        )
      : report(null);
  }

  // Rows the walk did not reach.
  const outside = (
    await db.query<{ what: string; id: string; seq: string | null }>(OUTSIDE, [instance, start])
  ).rows[0];
  if (outside) {
    const where = outside.seq === null ? 'without a chain position' : `at chain seq ${outside.seq}`;
    return report({
      kind: 'inserted',
      chainSeq: outside.seq === null ? 0 : Number(outside.seq),
      recordId: outside.id,
      message:
        `a ${outside.what} of record ${outside.id} ${where} lies outside the verified chain ` +
        `(which starts at ${start}): added by hand`,
    });
  }
  const orphan = (await db.query<{ id: string; seq: string }>(ORPHAN_OUTCOME, [instance, start])).rows[0];
  if (orphan)
    return report({
      kind: 'deleted',
      chainSeq: Number(orphan.seq),
      recordId: orphan.id,
      message: `the outcome at chain seq ${orphan.seq} belongs to record ${orphan.id}, whose decision is missing`,
    });
  if (anchor) {
    // What retention kept below the anchor has no predecessor to check against, but its own hash,
    // HMAC and columns still hold.
    for (const row of (await db.query<LinkRow>(KEPT_BELOW, [instance, start])).rows) {
      const problem =
        linkHash(row.prev, row.body) !== row.hash
          ? {
              kind: 'altered' as const,
              chainSeq: Number(row.seq),
              recordId: row.id,
              message: `the decision of record ${row.id} (chain seq ${row.seq}, kept below the anchor for its outcome) does not match its hash`,
            }
          : macAndColumns(row, hmacKey, instance);
      if (problem) return report(problem);
    }
  }

  if (!head) {
    return bookkeeping(
      'deleted',
      expected,
      `instance ${instance} has entries but no delivered head: the head was deleted, and with it perhaps the newest entries`,
    );
  }
  const headSeq = Number(head.chain_seq);
  if (headSeq >= expected) {
    return report({
      kind: 'deleted',
      chainSeq: expected,
      recordId: null,
      message: `chain seq ${expected}..${head.chain_seq} missing at the end (the last delivered link was ${head.chain_seq})`,
    });
  }
  if (headSeq < expected - 1) {
    return bookkeeping(
      'inserted',
      headSeq + 1,
      `chain seq ${headSeq + 1}..${expected - 1} lie beyond the last delivered link (${headSeq}): added, or the head was moved back`,
    );
  }
  if (head.hash !== prevHash) {
    return report({
      kind: 'altered',
      chainSeq: expected - 1,
      recordId: null,
      message: `the last link differs from the delivered head`,
    });
  }
  return report(null);
}

/** The checks a link passes on its own: its HMAC, a JSON body, and columns that match it. */
export function macAndColumns(row: LinkRow, hmacKey: string | undefined, instance: string): Problem | null {
  const seq = Number(row.seq);
  const at = { chainSeq: seq, recordId: row.id };
  if (hmacKey !== undefined && row.mac !== linkMac(hmacKey, row.hash)) {
    return {
      kind: 'forged',
      ...at,
      message: `the HMAC of chain seq ${seq} (record ${row.id}) is wrong: the chain was recomputed without the key`,
    };
  }
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(row.body) as Record<string, unknown>;
  } catch {
    return { kind: 'altered', ...at, message: 'body is not JSON' };
  }
  const col = columnMismatch(row, body, instance);
  if (col !== null) {
    return {
      kind: 'altered',
      ...at,
      message: `column ${col} of record ${row.id} differs from its hashed ${row.type}`,
    };
  }
  return null;
}

export async function listChainInstances(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ instance_id: string }>(
    `SELECT instance_id FROM pgwarden_chain_heads
     UNION SELECT instance_id FROM pgwarden_instances
     UNION SELECT instance_id FROM pgwarden_chain_anchors
     UNION SELECT DISTINCT instance_id FROM pgwarden_decisions
     UNION SELECT DISTINCT instance_id FROM pgwarden_outcomes ORDER BY 1`,
  );
  return rows.map((r) => r.instance_id).filter((i) => i !== null);
}

/**
 * A row no chain walk reaches because its instance or position is NULL: the schema forbids that,
 * but whoever owns the store's tables can drop the constraint, and the API would still show the row
 * (red team, round 25).
 */
const UNCHAINED = `
SELECT 'decision' AS what, id FROM pgwarden_decisions WHERE instance_id IS NULL OR chain_seq IS NULL
UNION ALL
SELECT 'outcome', record_id FROM pgwarden_outcomes WHERE instance_id IS NULL OR chain_seq IS NULL
LIMIT 1`;

async function unchainedRow(pool: pg.Pool): Promise<InstanceReport | null> {
  const row = (await pool.query<{ what: string; id: string | null }>(UNCHAINED)).rows[0];
  if (!row) return null;
  return {
    instance: '(none)',
    ok: false,
    checked: 0,
    firstSeq: 0,
    lastSeq: 0,
    problem: {
      kind: 'inserted',
      chainSeq: 0,
      recordId: row.id,
      message: `a ${row.what} of record ${row.id} has no instance or chain position: it belongs to no chain, added by hand (and the table's NOT NULL constraints dropped)`,
    },
  };
}

export async function verifyAll(
  pool: pg.Pool,
  hmacKey: string | undefined,
  instance?: string,
  opts: VerifyOptions = {},
): Promise<InstanceReport[]> {
  const instances = instance ? [instance] : await listChainInstances(pool);
  const out: InstanceReport[] = [];
  for (const i of instances) out.push(await verifyInstance(pool, i, hmacKey, opts));
  const stray = instance ? null : await unchainedRow(pool);
  if (stray) out.push(stray);
  return out;
}
