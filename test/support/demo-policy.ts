import { readCatalogSnapshot } from '../../src/policy/catalog-snapshot.js';
import type { Catalog } from '../../src/policy/catalog.js';
import { effectivePolicy, type EffectivePolicy } from '../../src/policy/effective.js';
import { loadRules } from '../../src/policy/rules-load.js';
import type { Rules } from '../../src/policy/rules-schema.js';
import { checkInvariant } from '../../src/rewrite/invariant.js';
import type { Node } from '../../src/sql/ast.js';
import { loadParser, parseSql } from '../../src/sql/parse.js';

/** The demo rules (rules/) over the grammar tests' catalog snapshot: unit tests of the rewriter. */
export interface DemoPolicy {
  readonly rules: Rules;
  readonly catalog: Catalog;
  readonly policy: EffectivePolicy;
}

export async function loadDemoPolicy(): Promise<DemoPolicy> {
  await loadParser();
  const catalog = readCatalogSnapshot('grammar-tests/catalog.json');
  const rules = await loadRules(['rules']);
  return { rules, catalog, policy: effectivePolicy(rules, catalog, []) };
}

/** What the independent invariant check objects to in SQL as forwarded for `tenant`, if anything. */
export function invariantObjection(demo: DemoPolicy, sql: string, tenant = 'acme'): string | undefined {
  const statements = parseSql(sql).stmts.map((s) => s.stmt as Node);
  // The agent's own statement is not at hand: every parameter counts as standing once.
  return checkInvariant(statements, demo.policy, demo.catalog, tenant, [], () => true);
}
