import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { z } from 'zod';
import type { Judge, JudgeContext, Verdict } from './verdict.js';
import { freshSessionState } from './verdict.js';

/**
 * A rules test case, as data owners write them (`pgwarden rules test <file>`) and as the grammar
 * tests are kept: who asks, what SQL, and what pgwarden must answer.
 */
export const caseSchema = z
  .object({
    description: z.string().optional(),
    tenant: z.string().min(1),
    roles: z.array(z.string()).default([]),
    human: z.string().default('tester@example.test'),
    protocol: z.enum(['simple', 'extended']).default('simple'),
    sql: z.string(),
    expect: z.enum(['allow', 'rewrite', 'deny']),
    /** For rewrites: the exact SQL pgwarden forwards. */
    sql_out: z.string().optional(),
    /** For denials: a reason code that must be among the verdict's reasons. */
    reason: z.string().optional(),
    /** Flags that must be set, e.g. cross_tenant_attempt. */
    flags: z.array(z.string()).optional(),
  })
  .strict();

export type RuleCase = z.infer<typeof caseSchema>;

const fileSchema = z.union([caseSchema, z.object({ cases: z.array(caseSchema).min(1) }).strict()]);

export async function readCases(file: string): Promise<RuleCase[]> {
  const data = fileSchema.parse(parse(await readFile(file, 'utf8')));
  return 'cases' in data ? data.cases : [data];
}

export function caseContext(c: RuleCase): JudgeContext {
  return {
    identity: {
      human: c.human,
      agent: 'rules-test',
      tenant: c.tenant,
      roles: c.roles,
      tokenId: undefined,
      expiresAt: undefined,
    },
    protocol: c.protocol,
    session: freshSessionState(),
  };
}

/** Runs one case; returns the problems (empty when the verdict is as expected). */
export function runCase(judge: Judge, c: RuleCase): { verdict: Verdict; problems: string[] } {
  const verdict = judge.judge(c.sql, caseContext(c)).verdict;
  const problems: string[] = [];
  if (verdict.kind !== c.expect)
    problems.push(
      `expected ${c.expect}, got ${verdict.kind}${verdict.kind === 'deny' ? ` (${verdict.reasons.join(', ')}: ${verdict.message})` : ''}`,
    );
  if (c.sql_out !== undefined && (verdict.kind !== 'rewrite' || verdict.sql !== c.sql_out))
    problems.push(
      `expected SQL:\n    ${c.sql_out}\n  got:\n    ${verdict.kind === 'rewrite' ? verdict.sql : `(${verdict.kind})`}`,
    );
  if (c.reason !== undefined && !verdict.reasons.includes(c.reason))
    problems.push(`expected reason ${c.reason}, got ${verdict.reasons.join(', ') || '(none)'}`);
  for (const f of c.flags ?? []) if (!verdict.flags.includes(f)) problems.push(`expected flag ${f}`);
  return { verdict, problems };
}
