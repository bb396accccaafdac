import type { Catalog, CatalogType } from '../policy/catalog.js';
import type { RangeVar } from '../sql/ast.js';
import { cteVisible, type Scope } from './context.js';

export type Resolved =
  | { readonly kind: 'cte'; readonly name: string }
  | { readonly kind: 'relation'; readonly schema: string; readonly name: string; readonly qname: string }
  | { readonly kind: 'missing'; readonly written: string };

/**
 * Resolves a relation name as Postgres does (parse_relation.c): a name without a schema is first
 * a CTE of an enclosing WITH, then the first schema of the search path that has it (pg_catalog is
 * in the effective path, first unless listed). Identifiers arrive case-folded and unquoted from the
 * parser, so names compare exactly. Write targets (INSERT/UPDATE/DELETE/MERGE) never name a CTE.
 * https://www.postgresql.org/docs/current/ddl-schemas.html#DDL-SCHEMAS-PATH
 */
export function resolveRelation(rv: RangeVar, catalog: Catalog, scope: Scope | undefined): Resolved {
  if (rv.catalogname !== undefined)
    return { kind: 'missing', written: `${rv.catalogname}.${rv.schemaname}.${rv.relname}` };
  if (rv.schemaname !== undefined) {
    const qname = `${rv.schemaname}.${rv.relname}`;
    return { kind: 'relation', schema: rv.schemaname, name: rv.relname, qname };
  }
  if (scope !== undefined && cteVisible(scope, rv.relname)) return { kind: 'cte', name: rv.relname };
  for (const schema of catalog.searchPath)
    if (catalog.relations[schema]?.[rv.relname] !== undefined)
      return { kind: 'relation', schema, name: rv.relname, qname: `${schema}.${rv.relname}` };
  return { kind: 'missing', written: rv.relname };
}

/** The CTE names visible inside the body of the i-th CTE of a WITH list. */
export function cteBodyScope(
  outer: Scope | undefined,
  names: readonly string[],
  i: number,
  recursive: boolean,
): Scope {
  return { ctes: new Set(recursive ? names : names.slice(0, i)), parent: outer };
}

/**
 * Resolves a type name as Postgres does (LookupTypeName): a qualified name in its schema, an
 * unqualified one in the first schema of the effective search path (pg_catalog first unless
 * listed) that has a type of that name. Undefined when no type has it, or the name has more parts
 * than schema.type. Own keys only: a name like `constructor` must not find Object's prototype.
 * https://www.postgresql.org/docs/current/ddl-schemas.html#DDL-SCHEMAS-PATH
 */
export function resolveType(parts: readonly string[], catalog: Catalog): CatalogType | undefined {
  const schema = typeSchema(parts, catalog);
  return schema === undefined ? undefined : catalog.types[schema]?.[parts[parts.length - 1] ?? ''];
}

/** The schema a type name resolves to (as resolveType), or undefined when none has it. */
export function typeSchema(parts: readonly string[], catalog: Catalog): string | undefined {
  const has = (schema: string, name: string): boolean => {
    const types = catalog.types[schema];
    return types !== undefined && Object.hasOwn(types, name);
  };
  if (parts.length === 2) return has(parts[0] ?? '', parts[1] ?? '') ? parts[0] : undefined;
  if (parts.length !== 1) return undefined;
  return catalog.searchPath.find((schema) => has(schema, parts[0] ?? ''));
}
