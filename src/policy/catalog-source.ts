import { existsSync } from 'node:fs';
import { loadCatalog, type Catalog } from './catalog.js';
import { readCatalogSnapshot } from './catalog-snapshot.js';

/** Options shared by `explain` and `rules`: where the rules are and where the catalog comes from. */
export const policyOptions = {
  rules: { type: 'string', multiple: true },
  'database-url': { type: 'string' },
  catalog: { type: 'string' },
  'search-path': { type: 'string' },
} as const;

export interface PolicyArgs {
  rules?: string[];
  'database-url'?: string;
  catalog?: string;
  'search-path'?: string;
}

/** The demo catalog snapshot, used when neither a database nor a snapshot is named. */
export const defaultSnapshot = 'grammar-tests/catalog.json';

/**
 * The catalog to judge against: the live database (--database-url or PGWARDEN_DATABASE_URL), a
 * snapshot file (--catalog), or, failing both, the demo snapshot if this is a pgwarden checkout.
 */
export async function catalogFrom(
  a: PolicyArgs,
  note: (s: string) => void,
): Promise<{ catalog: Catalog; searchPath: string } | undefined> {
  const searchPath = a['search-path'] ?? 'public';
  const url = a['database-url'] ?? process.env.PGWARDEN_DATABASE_URL;
  if (url) return { catalog: await loadCatalog(url, searchPath), searchPath };
  const file = a.catalog ?? (existsSync(defaultSnapshot) ? defaultSnapshot : undefined);
  if (!file) return undefined;
  if (!a.catalog) note(`no --database-url: using the catalog snapshot ${file}`);
  return { catalog: readCatalogSnapshot(file), searchPath };
}
