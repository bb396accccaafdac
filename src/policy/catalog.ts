import pg from 'pg';
import type { Rules } from './rules-schema.js';

/**
 * What pgwarden knows of the database: enough to resolve names as Postgres does and to check the
 * rules. Plain JSON, so a snapshot can be saved to a file for `pgwarden explain` without a database.
 */
export interface CatalogColumn {
  readonly name: string;
  /** pg_type.typname of the column's type (e.g. text, int4, uuid, numeric). */
  readonly type: string;
  /** format_type(), usable in a cast (e.g. numeric(12,2), character varying(20)). */
  readonly sqlType: string;
  /** attnum: the order positional INSERT uses. */
  readonly position: number;
  readonly notNull: boolean;
  readonly hasDefault: boolean;
}

export interface CatalogRelation {
  readonly schema: string;
  readonly name: string;
  /** pg_class.relkind: r table, p partitioned, v view, m materialized view, f foreign, S sequence... */
  readonly kind: string;
  readonly columns: readonly CatalogColumn[];
}

export interface CatalogFunction {
  /** False when some overload takes or returns a type that names or reaches catalog objects. */
  readonly safe: boolean;
}

export interface Catalog {
  /** The effective schema search order (current_schemas(true)): pg_catalog first unless listed. */
  readonly searchPath: readonly string[];
  /** schema -> relation name -> relation. */
  readonly relations: Readonly<Record<string, Readonly<Record<string, CatalogRelation>>>>;
  /** schema -> function name -> facts (every overload together). */
  readonly functions: Readonly<Record<string, Readonly<Record<string, CatalogFunction>>>>;
  /** Operator names defined outside pg_catalog, which could shadow the built-in ones. */
  readonly userOperators: readonly string[];
}

/**
 * Types whose values name catalog objects (so a string becomes a relation or function), or that
 * only internal code may pass. A function with such an argument or result is never callable.
 */
export const unsafeTypes = [
  'cstring',
  'internal',
  'regclass',
  'regproc',
  'regprocedure',
  'regoper',
  'regoperator',
  'regtype',
  'regnamespace',
  'regrole',
  'regcollation',
  'trigger',
  'event_trigger',
  'language_handler',
  'fdw_handler',
  'index_am_handler',
  'table_am_handler',
  'tsm_handler',
] as const;

const relationsSql = `
SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind,
       coalesce(json_agg(json_build_object(
         'name', a.attname, 'type', t.typname, 'sqlType', format_type(a.atttypid, a.atttypmod),
         'position', a.attnum, 'notNull', a.attnotnull, 'hasDefault', a.atthasdef OR a.attidentity <> ''
       ) ORDER BY a.attnum) FILTER (WHERE a.attnum IS NOT NULL), '[]') AS columns
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND n.nspname NOT IN ('information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%'
  AND n.nspname NOT LIKE 'pg_toast_temp%'
GROUP BY 1, 2, 3`;

const functionsSql = `
SELECT n.nspname AS schema, p.proname AS name,
       bool_and(p.prokind IN ('f', 'a', 'w') AND NOT EXISTS (
         SELECT 1 FROM unnest(p.proargtypes::oid[] || p.prorettype) AS u(oid)
         JOIN pg_catalog.pg_type ty ON ty.oid = u.oid
         WHERE ty.typname = ANY($1::text[]))) AS safe
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('information_schema', 'pg_toast')
GROUP BY 1, 2`;

const operatorsSql = `
SELECT DISTINCT o.oprname AS name FROM pg_catalog.pg_operator o
JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')`;

/** Reads the catalog with the search_path the proxy pins, so names resolve as they will upstream. */
export async function loadCatalog(connectionString: string, searchPath: string): Promise<Catalog> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    await client.query(`SELECT pg_catalog.set_config('search_path', $1, false)`, [searchPath]);
    const path = await client.query<{ s: string[] }>('SELECT pg_catalog.current_schemas(true)::text[] AS s');
    const rels = await client.query<{ schema: string; name: string; kind: string; columns: CatalogColumn[] }>(
      relationsSql,
    );
    const fns = await client.query<{ schema: string; name: string; safe: boolean }>(functionsSql, [
      [...unsafeTypes],
    ]);
    const ops = await client.query<{ name: string }>(operatorsSql);
    const relations: Record<string, Record<string, CatalogRelation>> = {};
    for (const r of rels.rows) (relations[r.schema] ??= {})[r.name] = r;
    const functions: Record<string, Record<string, CatalogFunction>> = {};
    for (const f of fns.rows) (functions[f.schema] ??= {})[f.name] = { safe: f.safe };
    return {
      searchPath: path.rows[0]?.s ?? ['pg_catalog'],
      relations,
      functions,
      userOperators: ops.rows.map((o) => o.name).sort(),
    };
  } finally {
    await client.end();
  }
}

export function findRelation(catalog: Catalog, schema: string, name: string): CatalogRelation | undefined {
  return catalog.relations[schema]?.[name];
}

export function splitQualified(name: string): [string, string] {
  const dot = name.indexOf('.');
  return [name.slice(0, dot), name.slice(dot + 1)];
}

/**
 * Checks the rules against the live catalog (at start and on every reload): every listed table
 * and column exists, tenant columns are present, parents are tenant-scoped, masks are known.
 * Returns the problems, each naming the rule path; empty means the rules fit the database.
 */
export function checkRulesAgainstCatalog(rules: Rules, catalog: Catalog): string[] {
  const problems: string[] = [];
  const columnsOf = (q: string): Set<string> | undefined => {
    const [s, n] = splitQualified(q);
    const rel = findRelation(catalog, s, n);
    return rel ? new Set(rel.columns.map((c) => c.name)) : undefined;
  };
  const checkColumns = (where: string, cols: Set<string>, names: readonly string[]): void => {
    for (const c of names) if (!cols.has(c)) problems.push(`${where}: column "${c}" does not exist`);
  };
  for (const [q, t] of Object.entries(rules.tables)) {
    const where = `tables.${q}`;
    const cols = columnsOf(q);
    if (!cols) {
      problems.push(`${where}: relation ${q} does not exist in the database`);
      continue;
    }
    if (t.tenant_column !== undefined && !cols.has(t.tenant_column))
      problems.push(`${where}.tenant_column: column "${t.tenant_column}" does not exist in ${q}`);
    if (t.columns) {
      checkColumns(`${where}.columns.allow`, cols, t.columns.allow ?? []);
      checkColumns(`${where}.columns.deny`, cols, t.columns.deny);
      checkColumns(`${where}.columns.mask`, cols, Object.keys(t.columns.mask));
      if (t.tenant_column !== undefined && t.columns.deny.includes(t.tenant_column))
        problems.push(`${where}.columns.deny: the tenant column cannot be denied (pgwarden filters on it)`);
    }
    if (t.parent) {
      const parent = rules.tables[t.parent.table];
      if (!parent || parent.scope !== 'tenant')
        problems.push(`${where}.parent.table: ${t.parent.table} must be a tenant-scoped table in the rules`);
      checkColumns(`${where}.parent.foreign_key`, cols, [t.parent.foreign_key]);
      const pcols = columnsOf(t.parent.table);
      if (pcols) checkColumns(`${where}.parent.references`, pcols, [t.parent.references]);
    }
  }
  for (const [role, r] of Object.entries(rules.roles ?? {})) {
    for (const [q, o] of Object.entries(r.tables)) {
      const where = `roles.${role}.tables.${q}`;
      if (!rules.tables[q]) problems.push(`${where}: ${q} is not listed under tables`);
      const cols = columnsOf(q);
      if (cols && o.columns) {
        checkColumns(`${where}.columns.allow`, cols, o.columns.allow ?? []);
        checkColumns(`${where}.columns.deny`, cols, o.columns.deny);
        checkColumns(`${where}.columns.mask`, cols, Object.keys(o.columns.mask));
      }
    }
  }
  const fnExists = (q: string): boolean => {
    const [s, n] = splitQualified(q);
    return catalog.functions[s]?.[n] !== undefined;
  };
  for (const f of rules.functions ?? [])
    if (!fnExists(f)) problems.push(`functions: function ${f} does not exist`);
  for (const [role, r] of Object.entries(rules.roles ?? {}))
    for (const f of r.functions)
      if (!fnExists(f)) problems.push(`roles.${role}.functions: function ${f} does not exist`);
  return problems;
}
