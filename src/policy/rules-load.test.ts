import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rulesJsonSchema } from './rules-json-schema.js';
import { loadRules, parseRulesText, RulesError } from './rules-load.js';

function dirWith(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgw-rules-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

async function problems(files: Record<string, string>): Promise<string[]> {
  const dir = dirWith(files);
  try {
    await loadRules([dir]);
    return [];
  } catch (err) {
    if (err instanceof RulesError) return err.problems.map((p) => p.replaceAll(`${dir}/`, ''));
    throw err;
  }
}

describe('rules loading', () => {
  it('merges the demo rules files', async () => {
    const rules = await loadRules(['rules']);
    expect(Object.keys(rules.tables).sort()).toEqual([
      'public.customers',
      'public.order_items',
      'public.orders',
      'public.products',
    ]);
    expect(rules.introspection).toContain('pg_catalog.pg_class');
    expect(rules.roles?.analyst?.tables['public.orders']?.row_limit).toBe(1000);
  });

  it('names the file, the path and what was expected for every problem', async () => {
    expect(
      await problems({
        'a.yaml': 'version: 1\ntables:\n  public.orders:\n    tenant_colum: org_id\n    access: [select]\n',
        'b.yaml': 'version: 1\ntables:\n  orders:\n    scope: global\n    access: [read]\n',
      }),
    ).toEqual([
      'a.yaml: tables."public.orders": Unrecognized key: "tenant_colum"',
      'a.yaml: tables."public.orders".tenant_column: a tenant-scoped table needs tenant_column',
      'b.yaml: tables.orders: a schema-qualified name such as public.orders',
    ]);
  });

  it('refuses a table defined in two files, and a tenant table without its column', async () => {
    const t = 'version: 1\ntables:\n  public.products: { scope: global, access: [select] }\n';
    expect(await problems({ 'a.yaml': t, 'b.yaml': t })).toEqual([
      'b.yaml: tables."public.products": already defined in a.yaml',
    ]);
    expect(
      await problems({ 'a.yaml': 'version: 1\ntables:\n  public.orders: { access: [select] }\n' }),
    ).toEqual(['a.yaml: tables."public.orders".tenant_column: a tenant-scoped table needs tenant_column']);
  });

  it('reports YAML syntax errors with the file name', () => {
    expect(() => parseRulesText('x.yaml', 'version: [1\n')).toThrow(/x\.yaml: /);
  });

  it('rules/schema.json is generated from the zod schema (regenerate: npx tsx src/policy/rules-json-schema.ts > rules/schema.json)', () => {
    expect(readFileSync('rules/schema.json', 'utf8')).toBe(rulesJsonSchema());
  });
});
