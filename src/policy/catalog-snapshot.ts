import { readFileSync } from 'node:fs';
import type { Catalog, CatalogFunction, CatalogRelation, CatalogType } from './catalog.js';
import { safeIntrospection } from './introspection.js';

/** System relations whose columns the snapshot keeps: agents read them through views that list them. */
const keptSystemColumns = new Set<string>(safeIntrospection);

/**
 * A catalog saved to a file, for `pgwarden explain` / `rules test` without a database and for the
 * grammar tests. System relations keep their names only, except those agents may read
 * (introspection.ts), whose columns their views list; keys are sorted so the file diffs cleanly.
 */
export function catalogSnapshot(catalog: Catalog): string {
  const relations: Record<string, Record<string, CatalogRelation>> = {};
  for (const schema of Object.keys(catalog.relations).sort()) {
    const out: Record<string, CatalogRelation> = {};
    const rels = catalog.relations[schema] ?? {};
    for (const name of Object.keys(rels).sort()) {
      const r = rels[name] as CatalogRelation;
      out[name] =
        schema === 'pg_catalog' && !keptSystemColumns.has(`${schema}.${name}`) ? { ...r, columns: [] } : r;
    }
    relations[schema] = out;
  }
  const functions: Record<string, Record<string, CatalogFunction>> = {};
  for (const schema of Object.keys(catalog.functions).sort()) {
    const fns = catalog.functions[schema] ?? {};
    functions[schema] = Object.fromEntries(
      Object.keys(fns)
        .sort()
        .map((n) => [
          n,
          {
            safe: fns[n]?.safe === true,
            ...(fns[n]?.oneArg ? { oneArg: true } : {}),
            ...(fns[n]?.fieldCall ? { fieldCall: true } : {}),
          },
        ]),
    );
  }
  const types: Record<string, Record<string, CatalogType>> = {};
  for (const schema of Object.keys(catalog.types).sort()) {
    const ts = catalog.types[schema] ?? {};
    types[schema] = Object.fromEntries(
      Object.keys(ts)
        .sort()
        .map((n) => [
          n,
          {
            ...(ts[n]?.rowOf === undefined ? {} : { rowOf: ts[n].rowOf }),
            ...(ts[n]?.namesObjects === true ? { namesObjects: true as const } : {}),
          },
        ]),
    );
  }
  return `${JSON.stringify({ searchPath: catalog.searchPath, relations, functions, types, userOperators: catalog.userOperators })}\n`;
}

export function readCatalogSnapshot(file: string): Catalog {
  const catalog = JSON.parse(readFileSync(file, 'utf8')) as Partial<Catalog>;
  // Type names are judged against the snapshot's types; without them every cast would be refused.
  if (catalog.types === undefined)
    throw new Error(`${file} has no types: write it again with pgwarden rules snapshot`);
  return catalog as Catalog;
}
