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
}

export interface Variant {
  readonly name: 'core' | 'scoped' | 'audit';
  readonly description: string;
  readonly rulesPaths: readonly string[];
  readonly tenant: string;
  readonly pgwardens: readonly PgwardenInstance[];
  /** Runs once after `pgbench -i`, as the superuser, directly on the server. */
  prepare?(db: Endpoint, scale: number): Promise<void>;
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
async function addTenantColumn(db: Endpoint, scale: number): Promise<void> {
  const half = Math.max(1, Math.floor(scale / 2));
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
    description: 'strict default rules (read-only SELECT on listed tables), decision log off',
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
  },
  audit: {
    name: 'audit',
    description: 'strict default rules; pgwarden with the decision log off and with the durable log on',
    rulesPaths: [join(repoRoot, 'bench/rules')],
    tenant: scopedTenant,
    pgwardens: [
      { target: 'pgwarden', label: 'pgwarden (log off)', audit: logOff },
      { target: 'pgwarden-audit', label: 'pgwarden (log on)', audit: auditOn },
    ],
  },
};
