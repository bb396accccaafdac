import pg from 'pg';
import type { Rules } from './rules-schema.js';

/**
 * The parent tables whose rows pgwarden's guards lock (FOR KEY SHARE, parent-guards.ts) when an
 * agent writes a parent-scoped table, and which pgwarden's database user may not lock: PostgreSQL
 * wants UPDATE on some column of a table for any row lock. Without it every such INSERT and
 * upsert fails in the server (42501, "permission denied for table ..."), safely but confusingly,
 * so pgwarden says so at start.
 */
export async function unlockableParents(connectionString: string, rules: Rules): Promise<string[]> {
  const writes = (access: readonly string[] | undefined): boolean =>
    access?.some((a) => a === 'insert' || a === 'update') ?? false;
  const parents = new Set<string>();
  for (const [name, t] of Object.entries(rules.tables)) {
    if (t.scope !== 'parent' || !t.parent) continue;
    // A role's override may grant the writes the base rule does not.
    const overrides = Object.values(rules.roles ?? {}).map((r) => r.tables[name]?.access);
    if (writes(t.access) || overrides.some(writes)) parents.add(t.parent.table);
  }
  if (parents.size === 0) return [];
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    const r = await client.query<{ t: string }>(
      `SELECT t FROM unnest($1::text[]) AS t
       WHERE pg_catalog.to_regclass(t) IS NOT NULL
         AND NOT pg_catalog.has_any_column_privilege(pg_catalog.to_regclass(t), 'UPDATE')`,
      [[...parents]],
    );
    return r.rows.map((x) => x.t);
  } finally {
    await client.end();
  }
}
