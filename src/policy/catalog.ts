import pg from 'pg';
import type { Rules, TableRule } from './rules-schema.js';
import { TENANT_COLUMN_TYPES } from './tenant-id.js';

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
  /** Its collation is nondeterministic (case- or accent-insensitive): equal values differ in text. */
  readonly nondeterministic?: true;
  /** A virtual generated column: its expression is evaluated when the column is read. */
  readonly virtual?: true;
  /**
   * "schema.name" of the sequence an identity or serial column owns (pg_get_serial_sequence).
   * Agents may see it, and its settings in pg_sequence, when they may see the column.
   */
  readonly sequence?: string | null;
}

export interface CatalogRelation {
  readonly schema: string;
  readonly name: string;
  /** pg_class.relkind: r table, p partitioned, v view, m materialized view, f foreign, S sequence... */
  readonly kind: string;
  readonly columns: readonly CatalogColumn[];
  /** The relation's foreign key constraints (absent in a snapshot written before they were kept). */
  readonly foreignKeys?: readonly CatalogForeignKey[];
  /**
   * Table inheritance (INHERITS, not partitioning): the relation has children, or is one. A scan
   * of a parent reads its children's rows too, which its keys and constraints do not cover.
   */
  readonly inheritance?: 'parent' | 'child' | 'both';
}

/** A foreign key constraint (pg_constraint, contype f). */
export interface CatalogForeignKey {
  readonly name: string;
  readonly columns: readonly string[];
  /** "schema.name" of the referenced relation. */
  readonly references: string;
  readonly referencedColumns: readonly string[];
  /** False for NOT VALID: rows from before it was added may reference nothing. */
  readonly validated: boolean;
  /** pg_constraint.confupdtype / confdeltype: a no action, r restrict, c cascade, n set null, d set default. */
  readonly onUpdate: string;
  readonly onDelete: string;
}

export interface CatalogFunction {
  /** False when some overload takes or returns a type that names or reaches catalog objects. */
  readonly safe: boolean;
  /**
   * Some overload can be called with one argument (the others have defaults, or are VARIADIC).
   * PostgreSQL reads the field notation `(x).f` as the call `f(x)` when x has no column f, for a
   * value of any type (`('abc').upper`): such a function is reachable without a call's syntax.
   */
  readonly oneArg?: boolean;
  /**
   * Of those, some overload's argument can be a row: a composite type, record, or a polymorphic
   * or "any" type (`o.f` with o a table is f(o) when f is not one of its columns).
   */
  readonly fieldCall?: boolean;
}

export interface CatalogType {
  /**
   * "schema.relation" when the type is a relation's row type, an array of one, or a domain over
   * either: its values have that relation's columns. Absent for every other type.
   */
  readonly rowOf?: string;
  /**
   * True when the type's input can look names up: a naming type (regclass, ...), or a domain,
   * array, range or multirange over one, or a composite or row type with a field of one, at any
   * depth. Absent otherwise.
   */
  readonly namesObjects?: true;
}

export interface Catalog {
  /** The effective schema search order (current_schemas(true)): pg_catalog first unless listed. */
  readonly searchPath: readonly string[];
  /** schema -> relation name -> relation. */
  readonly relations: Readonly<Record<string, Readonly<Record<string, CatalogRelation>>>>;
  /** schema -> type name (pg_type.typname) -> facts. */
  readonly types: Readonly<Record<string, Readonly<Record<string, CatalogType>>>>;
  /** schema -> function name -> facts (every overload together). */
  readonly functions: Readonly<Record<string, Readonly<Record<string, CatalogFunction>>>>;
  /** Operator names defined outside pg_catalog, which could shadow the built-in ones. */
  readonly userOperators: readonly string[];
}

/**
 * Types whose values name catalog objects (so a string becomes a relation or function), that only
 * internal code may pass, or whose values are OIDs, roles' privileges or transaction ids (a
 * function over them names any object by number or tells the server's activity:
 * oidvectortypes, acldefault, satisfies_hash_partition's error, age(xid)). A function with such an
 * argument or result (IN or OUT) is never callable, except for an overload that keeps to one of
 * the `closedTypes` (max(oid), min(xid8)): it turns nothing into a name. Array types are listed
 * too: the catalog query compares each argument's own type name.
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
  '_regclass',
  '_regproc',
  '_regprocedure',
  '_regoper',
  '_regoperator',
  '_regtype',
  '_regnamespace',
  '_regrole',
  '_regcollation',
  'trigger',
  'event_trigger',
  'language_handler',
  'fdw_handler',
  'index_am_handler',
  'table_am_handler',
  'tsm_handler',
  'oid',
  '_oid',
  'oidvector',
  '_oidvector',
  'aclitem',
  '_aclitem',
  'xid',
  '_xid',
  'xid8',
  '_xid8',
  'txid_snapshot',
  '_txid_snapshot',
  'pg_snapshot',
  '_pg_snapshot',
] as const;

/**
 * Types whose input looks a name up, but that built-in functions agents need take
 * (`to_tsvector('english', …)` casts its first argument to regconfig): explicit casts to them are
 * refused, the functions stay callable.
 */
export const lookupTypes = ['regconfig', 'regdictionary', '_regconfig', '_regdictionary'] as const;

/** Unsafe types an overload may use when its result and every argument are that one type. */
export const closedTypes = ['oid', 'xid', 'xid8'] as const;

/**
 * Unsafe types whose values are only numbers, so a cast to them names nothing (catalog queries
 * compare `oid = 1259::oid`). Casts to every other unsafe type are refused: aclitem's input
 * looks up role names, reg* types turn strings into objects.
 */
export const castableUnsafeTypes = ['oid', '_oid'] as const;

/** The unsafe types whose values name objects or hold the server's state: no cast may reach them. */
export const namingTypes: readonly string[] = unsafeTypes.filter(
  (t) => !castableUnsafeTypes.includes(t as never),
);

const relationsSql = `
SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind,
       coalesce(json_agg(json_build_object(
         'name', a.attname, 'type', t.typname, 'sqlType', format_type(a.atttypid, a.atttypmod),
         'position', a.attnum, 'notNull', a.attnotnull, 'hasDefault', a.atthasdef OR a.attidentity <> '',
         'nondeterministic', (SELECT NOT co.collisdeterministic FROM pg_catalog.pg_collation co WHERE co.oid = a.attcollation),
         'virtual', a.attgenerated = 'v',
         'sequence', CASE WHEN c.relkind IN ('r', 'p') AND n.nspname <> 'pg_catalog'
           THEN pg_catalog.pg_get_serial_sequence(pg_catalog.format('%I.%I', n.nspname, c.relname), a.attname) END
       ) ORDER BY a.attnum) FILTER (WHERE a.attnum IS NOT NULL), '[]') AS columns
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND n.nspname NOT IN ('information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%'
  AND n.nspname NOT LIKE 'pg_toast_temp%'
GROUP BY 1, 2, 3`;

const foreignKeysSql = `
SELECT n.nspname AS schema, c.relname AS name,
       json_agg(json_build_object(
         'name', con.conname,
         'columns', (SELECT json_agg(a.attname ORDER BY k.i) FROM unnest(con.conkey) WITH ORDINALITY AS k(num, i)
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num),
         'references', rn.nspname || '.' || r.relname,
         'referencedColumns', (SELECT json_agg(a.attname ORDER BY k.i) FROM unnest(con.confkey) WITH ORDINALITY AS k(num, i)
                               JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num),
         'validated', con.convalidated, 'onUpdate', con.confupdtype, 'onDelete', con.confdeltype
       ) ORDER BY con.conname) AS "foreignKeys"
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_class r ON r.oid = con.confrelid
JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
WHERE con.contype = 'f'
GROUP BY 1, 2`;

/** Relations in an inheritance tree (pg_inherits), partitions aside. */
const inheritanceSql = `
SELECT n.nspname AS schema, c.relname AS name,
       EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class k ON k.oid = i.inhrelid
               WHERE i.inhparent = c.oid AND NOT k.relispartition) AS parent,
       EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid) AND NOT c.relispartition AS child
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid IN (SELECT inhrelid FROM pg_catalog.pg_inherits UNION SELECT inhparent FROM pg_catalog.pg_inherits)`;

const functionsSql = `
SELECT n.nspname AS schema, p.proname AS name,
       bool_and(p.prokind IN ('f', 'a', 'w') AND NOT EXISTS (
         SELECT 1 FROM unnest(p.args || p.prorettype) AS u(oid)
         JOIN pg_catalog.pg_type ty ON ty.oid = u.oid
         WHERE ty.typname = ANY($1::text[])
           AND NOT (ty.typname = ANY($2::text[]) AND cardinality(p.args) > 0
                    AND p.prorettype = ALL(p.args)))) AS safe,
       bool_or(p.pronargs >= 1 AND p.pronargs - p.pronargdefaults - (p.provariadic <> 0)::int <= 1)
         AS "oneArg",
       bool_or(p.pronargs >= 1 AND p.pronargs - p.pronargdefaults - (p.provariadic <> 0)::int <= 1 AND EXISTS (
         SELECT 1 FROM pg_catalog.pg_type t0 LEFT JOIN pg_catalog.pg_type b0 ON b0.oid = t0.typbasetype
         WHERE t0.oid = p.proargtypes[0]
           AND (t0.typtype = 'c' OR b0.typtype = 'c'
                OR t0.typname IN ('record', 'any', 'anyelement', 'anynonarray', 'anycompatible',
                                  'anycompatiblenonarray')))) AS "fieldCall"
FROM (SELECT *, coalesce(proallargtypes, proargtypes::oid[]) AS args FROM pg_catalog.pg_proc) AS p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('information_schema', 'pg_toast')
GROUP BY 1, 2`;

/**
 * Every type a name can resolve to, with the relation whose columns its values have: its own row
 * type (typrelid), as an array's element, or as a domain's base type (one level of each). A
 * free-standing composite type (relkind c) is no relation's.
 */
const typesSql = `
WITH RECURSIVE naming(oid) AS (
  SELECT u.oid FROM pg_catalog.pg_type u
  WHERE u.typnamespace = 'pg_catalog'::pg_catalog.regnamespace AND u.typname = ANY($1::text[])
  UNION
  -- Every type whose values hold one: domains, arrays, ranges and multiranges over it, composite
  -- and row types with a field of it, to any depth.
  SELECT t.oid FROM naming k JOIN pg_catalog.pg_type t
    ON k.oid IN (t.typbasetype, t.typelem)
    OR EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = t.typrelid AND a.atttypid = k.oid
               AND a.attnum > 0 AND NOT a.attisdropped)
    OR EXISTS (SELECT 1 FROM pg_catalog.pg_range g WHERE k.oid = g.rngsubtype AND t.oid = g.rngtypid)
    OR EXISTS (SELECT 1 FROM pg_catalog.pg_range g WHERE k.oid = g.rngtypid AND t.oid = g.rngmultitypid)
)
SELECT n.nspname AS schema, t.typname AS name, rn.nspname || '.' || r.relname AS "rowOf",
       t.oid IN (SELECT oid FROM naming) AS "namesObjects"
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_catalog.pg_type b ON b.oid = t.typbasetype
LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem
LEFT JOIN pg_catalog.pg_type be ON be.oid = b.typelem
LEFT JOIN pg_catalog.pg_class r ON r.relkind <> 'c' AND r.oid IN (t.typrelid, b.typrelid, e.typrelid, be.typrelid)
LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
WHERE n.nspname NOT IN ('pg_toast') AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'`;

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
    const fns = await client.query<{
      schema: string;
      name: string;
      safe: boolean;
      oneArg: boolean;
      fieldCall: boolean;
    }>(functionsSql, [[...unsafeTypes], [...closedTypes]]);
    const typeRows = await client.query<{
      schema: string;
      name: string;
      rowOf: string | null;
      namesObjects: boolean;
    }>(typesSql, [[...namingTypes, ...lookupTypes]]);
    const ops = await client.query<{ name: string }>(operatorsSql);
    const fks = await client.query<{ schema: string; name: string; foreignKeys: CatalogForeignKey[] }>(
      foreignKeysSql,
    );
    const keysOf = new Map(fks.rows.map((k) => [`${k.schema}.${k.name}`, k.foreignKeys]));
    const inh = await client.query<{ schema: string; name: string; parent: boolean; child: boolean }>(
      inheritanceSql,
    );
    const treeOf = new Map<string, 'parent' | 'child' | 'both'>();
    for (const r of inh.rows)
      if (r.parent || r.child)
        treeOf.set(`${r.schema}.${r.name}`, r.parent && r.child ? 'both' : r.parent ? 'parent' : 'child');
    const relations: Record<string, Record<string, CatalogRelation>> = {};
    for (const r of rels.rows) {
      const q = `${r.schema}.${r.name}`;
      // Kept only when true, so snapshots stay as they were for the usual columns.
      r.columns = r.columns.map((c) => {
        const { nondeterministic, virtual, ...rest } = c as CatalogColumn & {
          nondeterministic?: boolean | null;
          virtual?: boolean | null;
        };
        return {
          ...rest,
          ...(nondeterministic === true ? { nondeterministic: true as const } : {}),
          ...(virtual === true ? { virtual: true as const } : {}),
        };
      });
      const inheritance = treeOf.get(q);
      (relations[r.schema] ??= {})[r.name] = {
        ...r,
        foreignKeys: keysOf.get(q) ?? [],
        ...(inheritance ? { inheritance } : {}),
      };
    }
    const functions: Record<string, Record<string, CatalogFunction>> = {};
    for (const f of fns.rows)
      (functions[f.schema] ??= {})[f.name] = {
        safe: f.safe,
        ...(f.oneArg ? { oneArg: true } : {}),
        ...(f.fieldCall ? { fieldCall: true } : {}),
      };
    const types: Record<string, Record<string, CatalogType>> = {};
    for (const t of typeRows.rows) {
      const bySchema = (types[t.schema] ??= {});
      // One row per relation matched: any relation at all makes the type a row type.
      const rowOf = bySchema[t.name]?.rowOf ?? t.rowOf ?? undefined;
      const namesObjects = bySchema[t.name]?.namesObjects === true || t.namesObjects;
      bySchema[t.name] = { ...(rowOf ? { rowOf } : {}), ...(namesObjects ? { namesObjects: true } : {}) };
    }
    return {
      searchPath: path.rows[0]?.s ?? ['pg_catalog'],
      relations,
      functions,
      types,
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

const namingTypeNames = new Set<string>(namingTypes);
const lookupTypeNames = new Set<string>(lookupTypes);

/**
 * A column whose values name objects (regclass, aclitem, a domain over regtype, ...): an untyped
 * literal or parameter beside it takes its type and goes through the server's lookup. The
 * configuration types of full-text search (regconfig) are left to the full-text functions' checks.
 */
function namesObjects(c: CatalogColumn, catalog: Catalog): boolean {
  if (lookupTypeNames.has(c.type)) return false;
  if (namingTypeNames.has(c.type)) return true;
  return Object.values(catalog.types).some(
    (ts) => Object.hasOwn(ts, c.type) && ts[c.type]?.namesObjects === true,
  );
}

/**
 * Why the database does not make `parent` a sound parent key for `child`, if it does not. A child
 * row belongs to the tenant of the one parent row its key names; only a validated foreign key
 * constraint from exactly that column to exactly the parent's column keeps it so. Without one the
 * key may name a row in each of two tenants (a key unique only within its tenant: each tenant read
 * and wrote the other's child rows), or no row at all until another tenant inserts a parent with
 * that key and adopts the orphans (red team, round 44). ON DELETE or ON UPDATE SET DEFAULT moves
 * child rows under whatever parent the default names, whichever tenant's it is.
 */
function parentKeyProblem(
  child: CatalogRelation | undefined,
  parentRelation: CatalogRelation | undefined,
  parent: { table: string; foreign_key: string; references: string },
): string | undefined {
  if (!child) return undefined;
  // PostgreSQL passes neither keys nor foreign keys down an inheritance tree, and a scan reads the
  // children too: a parent key in a child table named a row in each of two tenants, and a child
  // table's rows escaped its foreign key (red team, round 47). Partitions are not affected.
  for (const r of [child, parentRelation])
    if (r?.inheritance)
      return `${r.schema}.${r.name} is in a table inheritance tree (INHERITS): its keys and foreign keys do not cover the tables it inherits to or from, so pgwarden cannot scope ${child.schema}.${child.name} through it; use a partitioned table or a plain one`;
  if (child.foreignKeys === undefined)
    return 'the catalog snapshot holds no foreign keys (written before they were kept): write it again with pgwarden rules snapshot';
  const fk = child.foreignKeys.find(
    (k) =>
      k.references === parent.table &&
      k.columns.length === 1 &&
      k.columns[0] === parent.foreign_key &&
      k.referencedColumns.length === 1 &&
      k.referencedColumns[0] === parent.references,
  );
  const constraint = `FOREIGN KEY (${parent.foreign_key}) REFERENCES ${parent.table} (${parent.references})`;
  if (!fk)
    return `no foreign key constraint ${constraint} in the database: pgwarden scopes a child row by the one parent row its key names, which only such a constraint guarantees (the parent column unique in every tenant, no child row without its parent); add it`;
  if (!fk.validated)
    return `the foreign key ${fk.name} is NOT VALID: rows older than it may name a parent key no row has, which another tenant could then insert; VALIDATE CONSTRAINT ${fk.name}`;
  if (fk.onDelete === 'd' || fk.onUpdate === 'd')
    return `the foreign key ${fk.name} is ON ${fk.onDelete === 'd' ? 'DELETE' : 'UPDATE'} SET DEFAULT: it would move child rows under the parent row the default names, whichever tenant's it is; use NO ACTION, RESTRICT, CASCADE or SET NULL`;
  return undefined;
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
  /** Visible columns of a naming type: agents must not see them (red team, round 16). */
  const checkNaming = (
    where: string,
    q: string,
    columns: { allow?: string[]; deny: string[] } | undefined,
  ): void => {
    const [s, n] = splitQualified(q);
    for (const c of findRelation(catalog, s, n)?.columns ?? []) {
      const visible = !(columns?.deny ?? []).includes(c.name) && (columns?.allow?.includes(c.name) ?? true);
      if (visible && namesObjects(c, catalog))
        problems.push(
          `${where}: column "${c.name}" has type ${c.sqlType}, whose values name relations, functions or roles; deny it (columns.deny) or leave it out of columns.allow`,
        );
    }
  };
  /**
   * pgwarden filters on the tenant column and writes it: hidden (not allowed, denied or masked) in
   * the base rule or a role's, every write failed at run time and a filter on it was refused.
   */
  const checkTenantColumnShown = (
    where: string,
    rule: TableRule | undefined,
    columns: { allow?: string[]; deny: string[]; mask: Record<string, string> },
  ): void => {
    // A parent-scoped table's key likewise: pgwarden filters on it and checks it in every INSERT.
    const column = rule?.tenant_column ?? rule?.parent?.foreign_key;
    if (column === undefined) return;
    const what = rule?.tenant_column !== undefined ? 'the tenant column' : 'the parent key';
    const why = 'pgwarden filters on it and writes it; agents see only their own tenant in it anyway';
    if (columns.deny.includes(column))
      problems.push(`${where}.deny: ${what} "${column}" cannot be denied (${why})`);
    if (columns.allow && !columns.allow.includes(column))
      problems.push(`${where}.allow: must list ${what} "${column}" (${why})`);
    if (Object.hasOwn(columns.mask, column))
      problems.push(`${where}.mask: ${what} "${column}" cannot be masked (${why})`);
  };
  for (const [q, t] of Object.entries(rules.tables)) {
    const where = `tables.${q}`;
    const cols = columnsOf(q);
    if (!cols) {
      problems.push(`${where}: relation ${q} does not exist in the database`);
      continue;
    }
    checkNaming(`${where}.columns`, q, t.columns);
    if (t.tenant_column !== undefined && !cols.has(t.tenant_column))
      problems.push(`${where}.tenant_column: column "${t.tenant_column}" does not exist in ${q}`);
    const [ts, tn] = splitQualified(q);
    const tenantCol = findRelation(catalog, ts, tn)?.columns.find((c) => c.name === t.tenant_column);
    if (tenantCol && !TENANT_COLUMN_TYPES.includes(tenantCol.type))
      problems.push(
        `${where}.tenant_column: column "${tenantCol.name}" has type ${tenantCol.sqlType}; a tenant column is text, varchar, char, integer, bigint, smallint, numeric or uuid (a domain or citext compares otherwise than its text, and every statement on the table would be refused)`,
      );
    if (tenantCol?.virtual)
      problems.push(
        `${where}.tenant_column: column "${tenantCol.name}" is a virtual generated column: its expression runs on every tenant's rows when it is read; make it a stored column`,
      );
    if (tenantCol?.nondeterministic)
      problems.push(
        `${where}.tenant_column: column "${tenantCol.name}" has a nondeterministic collation: tenant ids that differ in case or accents would be one tenant; give it a deterministic collation`,
      );
    if (t.columns) {
      checkColumns(`${where}.columns.allow`, cols, t.columns.allow ?? []);
      checkColumns(`${where}.columns.deny`, cols, t.columns.deny);
      checkColumns(`${where}.columns.mask`, cols, Object.keys(t.columns.mask));
      checkTenantColumnShown(`${where}.columns`, t, t.columns);
    }
    if (t.parent) {
      const parent = rules.tables[t.parent.table];
      if (!parent || parent.scope !== 'tenant')
        problems.push(`${where}.parent.table: ${t.parent.table} must be a tenant-scoped table in the rules`);
      checkColumns(`${where}.parent.foreign_key`, cols, [t.parent.foreign_key]);
      const pcols = columnsOf(t.parent.table);
      if (pcols) checkColumns(`${where}.parent.references`, pcols, [t.parent.references]);
      const [s, n] = splitQualified(q);
      const [ps, pn] = splitQualified(t.parent.table);
      const problem = parentKeyProblem(findRelation(catalog, s, n), findRelation(catalog, ps, pn), t.parent);
      if (problem) problems.push(`${where}.parent: ${problem}`);
    }
  }
  for (const [role, r] of Object.entries(rules.roles ?? {})) {
    for (const [q, o] of Object.entries(r.tables)) {
      const where = `roles.${role}.tables.${q}`;
      if (!rules.tables[q]) problems.push(`${where}: ${q} is not listed under tables`);
      const cols = columnsOf(q);
      if (cols && o.columns) {
        checkTenantColumnShown(`${where}.columns`, rules.tables[q], o.columns);
        checkNaming(`${where}.columns`, q, o.columns);
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
