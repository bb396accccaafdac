import { parseArgs } from 'node:util';
import { checkRulesAgainstCatalog } from '../policy/catalog.js';
import { createPolicyJudge } from '../policy/engine.js';
import { RulesError } from '../policy/rules-load.js';
import type { JudgeContext } from '../policy/verdict.js';
import { freshSessionState } from '../policy/verdict.js';
import { loadParser } from '../sql/parse.js';
import { catalogFrom, policyOptions } from '../policy/catalog-source.js';
import { loadRulesOrReport } from './load-rules.js';

interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const usage = `usage: pgwarden explain --tenant <id> [--human h] [--role r]... [--rules <dir>]...
                        [--database-url <url> | --catalog <snapshot.json>] [--search-path p] [--json] "<sql>"
Without --database-url (or PGWARDEN_DATABASE_URL) the catalog comes from --catalog, or the demo
snapshot grammar-tests/catalog.json in a pgwarden checkout (pgwarden rules snapshot writes one).`;

/** `pgwarden explain`: the verdict, rule ids, reasons and rewritten SQL for one statement. */
export async function explainCommand(args: string[], io: Io): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        ...policyOptions,
        tenant: { type: 'string' },
        human: { type: 'string' },
        role: { type: 'string', multiple: true },
        protocol: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    });
  } catch (err) {
    io.stderr(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  const a = parsed.values;
  const sql = parsed.positionals.join(' ');
  if (a.help) {
    io.stdout(usage);
    return 0;
  }
  if (!a.tenant || !sql) {
    io.stderr(usage);
    return 2;
  }
  await loadParser();
  const rules = await loadRulesOrReport(a.rules, io.stderr);
  if (!rules) return 1;
  const source = await catalogFrom(a, io.stderr);
  if (!source) {
    io.stderr('explain needs the catalog: pass --database-url <url> or --catalog <snapshot.json>');
    return 2;
  }
  const problems = checkRulesAgainstCatalog(rules, source.catalog);
  if (problems.length > 0) {
    io.stderr(new RulesError(problems).message);
    return 1;
  }
  const judge = createPolicyJudge(rules, source.catalog, { searchPath: source.searchPath });
  const ctx: JudgeContext = {
    identity: {
      human: a.human ?? 'explain',
      agent: 'pgwarden-explain',
      tenant: a.tenant,
      roles: (a.role ?? []).flatMap((r) => r.split(',')),
      tokenId: undefined,
      expiresAt: undefined,
    },
    protocol: a.protocol === 'extended' ? 'extended' : 'simple',
    session: freshSessionState(),
  };
  const { verdict, fingerprint, judgeMicros } = judge.judge(sql, ctx);
  if (a.json) {
    io.stdout(JSON.stringify({ verdict, fingerprint, judgeMicros }, null, 2));
    return verdict.kind === 'deny' ? 1 : 0;
  }
  const lines = [`verdict:   ${verdict.kind}`];
  if (verdict.kind === 'deny') lines.push(`error:     ${verdict.code}: ${verdict.message}`);
  if (verdict.kind === 'rewrite') lines.push(`sql:       ${verdict.sql}`);
  if (verdict.kind !== 'deny' && verdict.paramChecks?.length)
    lines.push(`at Bind:   ${verdict.paramChecks.map((p) => `$${p.index} = '${p.equals}'`).join(', ')}`);
  lines.push(`rules:     ${verdict.ruleIds.join(', ') || '-'}`);
  lines.push(`reasons:   ${verdict.reasons.join(', ') || '-'}`);
  if (verdict.tables.length) lines.push(`tables:    ${verdict.tables.join(', ')}`);
  if (verdict.flags.length) lines.push(`flags:     ${verdict.flags.join(', ')}`);
  io.stdout(lines.join('\n'));
  return verdict.kind === 'deny' ? 1 : 0;
}
