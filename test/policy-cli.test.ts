import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { explainCommand } from '../src/cli/explain.js';
import { rulesCommand } from '../src/cli/rules.js';

function io(): {
  out: string[];
  err: string[];
  io: { stdout: (s: string) => void; stderr: (s: string) => void };
} {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: (s) => out.push(s), stderr: (s) => err.push(s) } };
}

describe('pgwarden explain', () => {
  it('prints the verdict, rules, reasons and rewritten SQL', async () => {
    const t = io();
    const code = await explainCommand(['--tenant', 'acme', 'SELECT id FROM orders'], t.io);
    expect(code).toBe(0);
    expect(t.out.join('\n')).toContain(
      "sql:       SELECT id FROM public.orders AS orders WHERE orders.org_id OPERATOR(pg_catalog.=) 'acme'::text",
    );
    expect(t.out.join('\n')).toContain('rules:     tables.public.orders');
  });

  it('--json and a denial exit 1 with the reason', async () => {
    const t = io();
    expect(
      await explainCommand(
        ['--tenant', 'acme', '--json', "SELECT * FROM orders WHERE org_id = 'globex'"],
        t.io,
      ),
    ).toBe(1);
    const v = JSON.parse(t.out.join('')) as { verdict: { kind: string; flags: string[] } };
    expect(v.verdict.kind).toBe('deny');
    expect(v.verdict.flags).toContain('cross_tenant_attempt');
  });

  it('applies --role', async () => {
    const t = io();
    await explainCommand(['--tenant', 'acme', '--role', 'analyst', 'SELECT id FROM orders'], t.io);
    expect(t.out.join('\n')).toMatch(/LIMIT 1000/);
  });

  it('needs --tenant and SQL', async () => {
    expect(await explainCommand(['SELECT 1'], io().io)).toBe(2);
  });
});

describe('pgwarden rules', () => {
  it('check validates the rules against the catalog', async () => {
    const t = io();
    expect(await rulesCommand(['check'], t.io)).toBe(0);
    expect(t.out.join('')).toContain('rules are valid and match the catalog (4 tables)');
    const bad = mkdtempSync(join(tmpdir(), 'pgw-cli-'));
    writeFileSync(
      join(bad, 'r.yaml'),
      'version: 1\ntables:\n  public.nope: { scope: global, access: [select] }\n',
    );
    const t2 = io();
    expect(await rulesCommand(['check', '--rules', bad], t2.io)).toBe(1);
    expect(t2.err.join('')).toContain(
      'tables.public.nope: relation public.nope does not exist in the database',
    );
    expect(t.err.filter((l) => l.startsWith('warning:'))).toEqual([]);
  });

  it('check warns of a column a role shows that the base rule denies, and passes (red team, round 44)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgw-cli-'));
    const demo = readFileSync('rules/demo.yaml', 'utf8');
    // A role meant to add one mask, which shows the ssn the base rule denies.
    writeFileSync(
      join(dir, 'demo.yaml'),
      `${demo}
  careless:
    tables:
      public.customers:
        columns: { mask: { name: "'x'" } }
`,
    );
    const t = io();
    expect(await rulesCommand(['check', '--rules', dir], t.io)).toBe(0);
    expect(t.err.join('\n')).toContain(
      'warning: roles.careless.tables.public.customers.columns shows "ssn", which tables.public.customers denies',
    );
  });

  it('test runs case files and reports failures', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgw-cli-'));
    const file = join(dir, 'cases.yaml');
    writeFileSync(
      file,
      [
        'cases:',
        '  - { tenant: acme, sql: "SELECT ssn FROM customers", expect: deny, reason: column_denied }',
        '  - { tenant: acme, sql: "SELECT * FROM products", expect: allow }',
        '  - { tenant: acme, sql: "DELETE FROM customers", expect: rewrite, description: wrong on purpose }',
      ].join('\n'),
    );
    const t = io();
    expect(await rulesCommand(['test', file], t.io)).toBe(1);
    expect(t.out.join('\n')).toContain('FAIL');
    expect(t.out.join('\n')).toContain('wrong on purpose');
    expect(t.out.join('\n')).toContain('2 of 3 cases passed');
    expect(await rulesCommand(['test', 'grammar-tests/writes/attack-merge.yaml'], io().io)).toBe(0);
  });
});
