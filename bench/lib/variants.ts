import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { ConfigInput } from '../../src/config/schema.js';
import { makeTempDir } from './processes.js';
import { repoRoot } from './pgwarden.js';
import type { TargetName } from './report.js';
import type { Endpoint } from './targets.js';

type AuditInput = NonNullable<ConfigInput['audit']>;

export interface PgwardenInstance {
  readonly target: Extract<TargetName, 'pgwarden' | 'pgwarden-audit'>;
  /** Column heading in the results table. */
  readonly label: string;
  /** A function: the log-on config makes a temp dir, which only the variant that runs may do. */
  readonly audit: () => AuditInput;
  /**
   * After the run: what this instance's decision log holds, for the report. A log that was
   * configured on but wrote nothing would make its column measure something else, so say so.
   */
  evidence?(audit: AuditInput, admin: Endpoint, transactions: number): Promise<string>;
  /**
   * Waits after each run of this instance until its background work on the server has stopped,
   * so that it does not load the server while the next target is measured. Returns the ms waited.
   */
  settle?(audit: AuditInput, admin: Endpoint): Promise<number>;
}

export interface Variant {
  readonly name: 'core' | 'scoped' | 'audit';
  readonly description: string;
  readonly rulesPaths: readonly string[];
  readonly tenant: string;
  readonly pgwardens: readonly PgwardenInstance[];
  /** Runs once after `pgbench -i`, as the superuser, directly on the server. */
  prepare?(db: Endpoint, scale: number): Promise<void>;
  /**
   * The scale pgbench must see through `target` (it counts pgbench_branches at start). A different
   * figure means the target did not apply the rules the variant is about, and the run stops.
   */
  expectedScale?(target: TargetName, scale: number): number;
}

/** No decision records at all: the baseline the log's cost is measured against. */
const logOff = (): AuditInput => ({ ndjson: 'off', durable: false });

/**
 * The durable decision log with its defaults (spool with batched fsync, store in the
 * pgwarden_audit database on the same server), NDJSON off so only the durable path is measured.
 * The spool goes to a temp dir beside the server's data dir (both under os.tmpdir()): if that
 * is tmpfs, fsync is free and the figure flatters the log, so point TMPDIR at a disk then.
 */
function auditOn(): AuditInput {
  return {
    ndjson: 'off',
    durable: true,
    spool: { dir: join(makeTempDir('pgwarden-bench-spool-'), 'spool') },
  };
}

function bytesUnder(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((n, f) => n + bytesUnder(join(path, f)), 0);
}

/** Spool bytes and the records that reached the store (default: pgwarden_audit on the same server). */
async function durableLogEvidence(audit: AuditInput, admin: Endpoint, transactions: number): Promise<string> {
  const spool = audit.spool?.dir;
  // Shipped spool segments are deleted, so an empty spool alone does not mean nothing was logged.
  const spoolBytes = spool === undefined ? 0 : bytesUnder(spool);
  let records = 0;
  let stored: string;
  const c = new pg.Client({ ...admin, database: audit.store?.database ?? 'pgwarden_audit' });
  try {
    await c.connect();
    records = await storedRecords(c);
    stored = `${records.toLocaleString('en-US')} records in the store`;
  } catch (err) {
    stored = `store not readable (${(err as Error).message})`;
  } finally {
    await c.end().catch(() => {});
  }
  const warning =
    spoolBytes === 0 && records === 0
      ? ' — **WARNING: the durable log wrote nothing; the log-on column measures pgwarden without it**'
      : '';
  return (
    `decision log (log on): ${transactions.toLocaleString('en-US')} pgbench transactions, ` +
    `${spoolBytes.toLocaleString('en-US')} bytes in the spool, ${stored}${warning}`
  );
}

async function storedRecords(c: pg.Client): Promise<number> {
  const r = await c.query<{ n: string }>('SELECT count(*) AS n FROM pgwarden_decisions');
  return Number(r.rows[0]?.n ?? 0);
}

/**
 * The shipper moves spooled records to the store (on the same server) in the background and may
 * trail the load by many seconds; until the count stops growing, it would slow down whichever
 * target runs next. Waits at most two minutes.
 */
async function storeCaughtUp(audit: AuditInput, admin: Endpoint): Promise<number> {
  const started = Date.now();
  const c = new pg.Client({ ...admin, database: audit.store?.database ?? 'pgwarden_audit' });
  await c.connect();
  try {
    let last = -1;
    for (;;) {
      const n = await storedRecords(c);
      if (n === last || Date.now() - started > 120_000) return Date.now() - started;
      last = n;
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    await c.end();
  }
}

/** The pgbench tables as the tenant-scoped variant sees them: `org_id` splits branches in two. */
export const scopedTenant = 'acme';
const otherTenant = 'globex';

/**
 * Adds org_id to branches, tellers and accounts. The first half of the branches (and their tellers
 * and accounts) belong to `acme`, whose token the benchmark uses: through pgwarden pgbench then
 * counts half the branches, so every aid it draws is one of acme's rows and each transaction still
 * reads exactly one row, as on the direct path.
 * ALTER COLUMN ... TYPE ... USING rewrites each table once; an UPDATE would leave half the heap dead
 * and make the scoped figures depend on vacuum.
 */
const tenantBranches = (scale: number): number => Math.max(1, Math.floor(scale / 2));

async function addTenantColumn(db: Endpoint, scale: number): Promise<void> {
  const half = tenantBranches(scale);
  const c = new pg.Client({ ...db });
  await c.connect();
  try {
    for (const t of ['pgbench_branches', 'pgbench_tellers', 'pgbench_accounts']) {
      await c.query(`ALTER TABLE ${t} ADD COLUMN org_id text`);
      await c.query(
        `ALTER TABLE ${t} ALTER COLUMN org_id TYPE text
           USING (CASE WHEN bid <= ${half} THEN '${scopedTenant}' ELSE '${otherTenant}' END),
         ALTER COLUMN org_id SET NOT NULL`,
      );
      await c.query(`VACUUM ANALYZE ${t}`);
    }
  } finally {
    await c.end();
  }
}

export const variants: Record<Variant['name'], Variant> = {
  core: {
    name: 'core',
    description:
      'read-only rules for the pgbench tables (scope global: judged, never rewritten), decision log off',
    rulesPaths: [join(repoRoot, 'bench/rules')],
    tenant: scopedTenant,
    pgwardens: [{ target: 'pgwarden', label: 'pgwarden', audit: logOff }],
  },
  scoped: {
    name: 'scoped',
    description:
      'tenant rules (org_id on accounts, tellers, branches): every statement is rewritten with a tenant filter; decision log off',
    rulesPaths: [join(repoRoot, 'bench/rules-scoped')],
    tenant: scopedTenant,
    pgwardens: [{ target: 'pgwarden', label: 'pgwarden (scoped)', audit: logOff }],
    prepare: addTenantColumn,
    expectedScale: (target, scale) => (target === 'pgwarden' ? tenantBranches(scale) : scale),
  },
  audit: {
    name: 'audit',
    description: 'the core rules; pgwarden with the decision log off and with the durable log on',
    rulesPaths: [join(repoRoot, 'bench/rules')],
    tenant: scopedTenant,
    pgwardens: [
      { target: 'pgwarden', label: 'pgwarden (log off)', audit: logOff },
      {
        target: 'pgwarden-audit',
        label: 'pgwarden (log on)',
        audit: auditOn,
        evidence: durableLogEvidence,
        settle: storeCaughtUp,
      },
    ],
  },
};
