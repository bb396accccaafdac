import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { checkRulesAgainstCatalog, loadCatalog } from '../policy/catalog.js';
import { roleWarnings } from '../policy/role-warnings.js';
import { catalogSnapshot } from '../policy/catalog-snapshot.js';
import { readCases, runCase } from '../policy/case-file.js';
import { createPolicyJudge } from '../policy/engine.js';
import { RulesError } from '../policy/rules-load.js';
import { loadParser } from '../sql/parse.js';
import { catalogFrom, policyOptions } from '../policy/catalog-source.js';
import { loadRulesOrReport } from './load-rules.js';

interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const usage = `usage: pgwarden rules check [--rules <dir>]... [--database-url <url> | --catalog <snapshot.json>]
       pgwarden rules test <case.yaml>... [--rules <dir>]... [--database-url <url> | --catalog <snapshot.json>]
       pgwarden rules snapshot --database-url <url> --out <snapshot.json> [--search-path p]`;

/** `pgwarden rules check | test | snapshot`; returns the exit code (0 ok, 1 problems, 2 usage). */
export async function rulesCommand(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { ...policyOptions, out: { type: 'string' }, verbose: { type: 'boolean' } },
    });
  } catch (err) {
    io.stderr(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  const a = parsed.values;
  await loadParser();
  if (sub === 'snapshot') {
    const url = a['database-url'] ?? process.env.PGWARDEN_DATABASE_URL;
    if (!url || !a.out) {
      io.stderr(usage);
      return 2;
    }
    writeFileSync(a.out, catalogSnapshot(await loadCatalog(url, a['search-path'] ?? 'public')));
    io.stdout(`catalog snapshot written to ${a.out}`);
    return 0;
  }
  if (sub !== 'check' && sub !== 'test') {
    io.stderr(usage);
    return 2;
  }
  const rules = await loadRulesOrReport(a.rules, io.stderr);
  if (!rules) return 1;
  const source = await catalogFrom(a, io.stderr);
  if (!source) {
    if (sub === 'test') {
      io.stderr('rules test needs the catalog: pass --database-url <url> or --catalog <snapshot.json>');
      return 2;
    }
    io.stdout(`rules are valid (${Object.keys(rules.tables).length} tables); not checked against a database`);
    return 0;
  }
  const problems = checkRulesAgainstCatalog(rules, source.catalog);
  if (problems.length > 0) {
    io.stderr(new RulesError(problems).message);
    return 1;
  }
  if (sub === 'check') {
    for (const w of roleWarnings(rules)) io.stderr(`warning: ${w}`);
    io.stdout(`rules are valid and match the catalog (${Object.keys(rules.tables).length} tables)`);
    return 0;
  }
  if (parsed.positionals.length === 0) {
    io.stderr(usage);
    return 2;
  }
  const judge = createPolicyJudge(rules, source.catalog, { searchPath: source.searchPath });
  let failed = 0;
  let total = 0;
  for (const file of parsed.positionals) {
    let cases;
    try {
      cases = await readCases(file);
    } catch (err) {
      io.stderr(`${file}: ${(err as Error).message}`);
      failed++;
      continue;
    }
    cases.forEach((c, i) => {
      total++;
      const { problems: p } = runCase(judge, c);
      const name = `${file}${cases.length > 1 ? `#${i + 1}` : ''}${c.description ? ` (${c.description})` : ''}`;
      if (p.length === 0) {
        if (a.verbose) io.stdout(`ok    ${name}`);
      } else {
        failed++;
        io.stdout(`FAIL  ${name}\n  ${c.sql}\n  ${p.join('\n  ')}`);
      }
    });
  }
  io.stdout(`${total - failed} of ${total} cases passed`);
  return failed === 0 ? 0 : 1;
}
