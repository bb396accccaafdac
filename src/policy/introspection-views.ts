import { stripLocations, type Node } from '../sql/ast.js';
import { parseSql } from '../sql/parse.js';
import { findRelation, splitQualified, type Catalog } from './catalog.js';
import type { TablePolicy } from './effective.js';
import { emptyIntrospection } from './introspection.js';

/**
 * Catalog columns whose types name objects, and what agents read them as. An untyped literal next
 * to one takes its type and goes through its input function: `greatest(typinput, '16617')` named
 * any function by OID, `coalesce(relacl, '{x=r/postgres}')` told whether a role exists (red team,
 * round 11). As numbers and text they name nothing more than they show.
 */
const NAMING_COLUMN_CASTS: Readonly<Record<string, string>> = {
  ...Object.fromEntries(
    [
      'regproc',
      'regprocedure',
      'regoper',
      'regoperator',
      'regclass',
      'regtype',
      'regnamespace',
      'regrole',
      'regcollation',
    ].flatMap((t) => [
      [t, 'pg_catalog.oid'],
      [`_${t}`, 'pg_catalog.oid[]'],
    ]),
  ),
  aclitem: 'pg_catalog.text',
  _aclitem: 'pg_catalog.text[]',
};

/** pg_settings rows agents may read: preset options that describe what SQL the server takes. */
const presetSettings = [
  'block_size',
  'integer_datetimes',
  'max_function_args',
  'max_identifier_length',
  'max_index_keys',
  'server_encoding',
  'server_version',
  'server_version_num',
];

/**
 * Catalog columns of transaction ids (`pg_class.relfrozenxid`, `relminmxid`): they follow the
 * transaction counter, which moves with every tenant's writes. Read as NULL.
 */
const TRANSACTION_COLUMN_TYPES = new Set(['xid', 'xid8', '_xid', '_xid8']);

/**
 * Columns of the database's own relations (OIDs from 16384) that agents read as a constant. Page
 * and row counts (relpages, reltuples, relallvisible, relallfrozen) sum every tenant's rows: acme
 * saw 18 rows of orders and reltuples said 30. The rule and row-security flags tell of rules and
 * policies that pg_rewrite and pg_policy do not show (red team, round 23). relhastriggers stays:
 * foreign keys set it too, and psql lists a table's foreign keys only when it is set.
 */
const UNTOLD_COLUMNS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  'pg_catalog.pg_class': {
    relpages: '0',
    reltuples: '-1',
    relallvisible: '0',
    relallfrozen: '0',
    relhasrules: 'false',
    relrowsecurity: 'false',
    relforcerowsecurity: 'false',
  },
};

/**
 * The select list of a catalog relation's view: `*`, or its columns with the object-naming ones
 * cast (NAMING_COLUMN_CASTS) and the transaction ids NULL, when the catalog knows its columns (a
 * snapshot written before they were kept does not: `pgwarden rules snapshot` writes them).
 */
function selectList(qname: string, catalog: Catalog): string {
  const [schema, name] = splitQualified(qname);
  const columns = findRelation(catalog, schema, name)?.columns ?? [];
  const untold = UNTOLD_COLUMNS[qname] ?? {};
  const rewritten = (c: { name: string; type: string }): boolean =>
    NAMING_COLUMN_CASTS[c.type] !== undefined || TRANSACTION_COLUMN_TYPES.has(c.type) || c.name in untold;
  if (!columns.some(rewritten)) return '*';
  return columns
    .map((c) => {
      const id = `"${c.name.replace(/"/g, '""')}"`;
      const stands = untold[c.name];
      if (stands !== undefined)
        return `CASE WHEN oid OPERATOR(pg_catalog.<) 16384::pg_catalog.oid THEN ${id} ELSE CAST(${stands} AS pg_catalog.${c.type}) END AS ${id}`;
      if (TRANSACTION_COLUMN_TYPES.has(c.type))
        return `NULL::pg_catalog.${c.type.replace(/^_(.*)$/, '$1[]')} AS ${id}`;
      const cast = NAMING_COLUMN_CASTS[c.type];
      return cast === undefined ? id : `${id}::${cast} AS ${id}`;
    })
    .join(', ');
}

/**
 * What stands in for a listed catalog relation: the relation filtered to what the rules name, so
 * a listing never shows a table or column that a query would refuse ("tables not listed do not
 * exist for agents" holds for schema discovery too).
 *
 * The pg_catalog filters keep the rows about the listed tables and about the system's own objects
 * (OIDs below 16384, FirstNormalObjectId: everything initdb made, pg_catalog and
 * information_schema included), and drop hidden columns by attnum. pg_class also keeps the
 * sequences that visible identity and serial columns own, and the indexes pg_index shows. Types,
 * enums, ranges and collations are those of the system, of the listed tables' schemas and of
 * visible columns; pg_am stays as it is. Each filter reads only its own
 * relation, or another catalog relation that is itself listed, so the rewrite names nothing the
 * rules did not. OFFSET 0 fences each view: the agent's predicates are evaluated above it, so one
 * that raises on a hidden row's value (`1 / (relname = 'secret')::int`) never sees that row.
 */
export function introspectionViews(
  listed: ReadonlySet<string>,
  tables: ReadonlyMap<string, TablePolicy>,
  catalog: Catalog,
): Map<string, Node> {
  const visible = [...tables.values()];
  const lit = (s: string): string => `'${s.replace(/'/g, "''")}'`;
  const ident = (s: string): string => `"${s.replace(/"/g, '""')}"`;
  const inValues = (columns: string, rows: string[]): string =>
    rows.length === 0 ? 'false' : `(${columns}) IN (VALUES ${rows.join(', ')})`;
  const regclass = (t: TablePolicy): string =>
    `pg_catalog.to_regclass(${lit(`${ident(t.schema)}.${ident(t.name)}`)})`;
  /** `col` is one of the listed tables (a hashed subplan: the names are resolved once). */
  const isListed = (col: string): string =>
    visible.length === 0
      ? 'false'
      : `${col} IN (VALUES ${visible.map((t) => `(${regclass(t)}::pg_catalog.oid)`).join(', ')})`;
  const system = (col: string): string => `${col} OPERATOR(pg_catalog.<) 16384::pg_catalog.oid`;
  const about = (col: string): string => `(${system(col)} OR ${isListed(col)})`;
  /** (relation, attnum) of every hidden column: its catalog rows go too. */
  const hiddenColumns = (rel: string, num: string): string => {
    const rows = visible.flatMap((t) =>
      t.columns
        .filter((c) => t.hidden.has(c.name))
        .map((c) => `(${regclass(t)}::pg_catalog.oid, ${c.position})`),
    );
    return rows.length === 0 ? 'true' : `NOT ${inValues(`${rel}, ${num}::pg_catalog.int4`, rows)}`;
  };
  /**
   * Rows whose `keys` (an int2[] of attnums of relation `rel`) include a hidden column: a
   * constraint or index on it names it and shows its definition.
   */
  const hiddenKeyRows = visible.flatMap((t) => {
    const nums = t.columns.filter((c) => t.hidden.has(c.name)).map((c) => c.position);
    return nums.length === 0
      ? []
      : [`(${regclass(t)}::pg_catalog.oid, '{${nums.join(',')}}'::pg_catalog.int2[])`];
  });
  const touchesHidden = (rel: string, keys: string): string =>
    hiddenKeyRows.length === 0
      ? 'false'
      : `EXISTS (SELECT 1 FROM (VALUES ${hiddenKeyRows.join(', ')}) AS h(rel, keys) ` +
        `WHERE h.rel OPERATOR(pg_catalog.=) ${rel} AND h.keys OPERATOR(pg_catalog.&&) ${keys})`;
  /** Tables with hidden columns: their expression and partial indexes may name one. */
  const withHidden = visible.filter((t) => t.hidden.size > 0);
  const hasHidden = (rel: string): string =>
    withHidden.length === 0
      ? 'false'
      : `${rel} IN (VALUES ${withHidden.map((t) => `(${regclass(t)}::pg_catalog.oid)`).join(', ')})`;
  /** An index agents may see: on a listed (or system) table, naming no hidden column. */
  const visibleIndex = (i: string): string =>
    `${about(`${i}indrelid`)} AND NOT ${touchesHidden(`${i}indrelid`, `${i}indkey::pg_catalog.int2[]`)} AND ` +
    `NOT (${hasHidden(`${i}indrelid`)} AND (${i}indexprs IS NOT NULL OR ${i}indpred IS NOT NULL))`;
  /** Sequences owned by columns agents may see (identity and serial columns). */
  const ownedSequences = visible.flatMap((t) =>
    t.columns
      .filter((c) => !t.hidden.has(c.name) && typeof c.sequence === 'string')
      .map((c) => `(pg_catalog.to_regclass(${lit(c.sequence ?? '')})::pg_catalog.oid)`),
  );
  const isOwnedSequence = (col: string): string =>
    ownedSequences.length === 0 ? 'false' : `${col} IN (VALUES ${ownedSequences.join(', ')})`;
  /**
   * Schemas agents see (pg_namespace): a type, collation, enum or range in another is the
   * database's private business, and its name says which schemas exist (red team, round 23).
   */
  const schemas = [...new Set(visible.map((t) => t.schema))];
  const inVisibleSchema = (col: string): string =>
    schemas.length === 0
      ? 'false'
      : `${col} IN (VALUES ${schemas.map((x) => `(pg_catalog.to_regnamespace(${lit(ident(x))})::pg_catalog.oid)`).join(', ')})`;
  /** The types of visible columns (and an array column's element type), wherever they live. */
  const columnTypes = [
    ...new Set(
      visible.flatMap((t) =>
        t.columns
          .filter((c) => !t.hidden.has(c.name))
          .flatMap((c) => (c.sqlType.endsWith('[]') ? [c.sqlType, c.sqlType.slice(0, -2)] : [c.sqlType])),
      ),
    ),
  ].map((x) => `(pg_catalog.to_regtype(${lit(x)})::pg_catalog.oid)`);
  const ofColumn = (col: string): string =>
    columnTypes.length === 0 ? 'false' : `${col} IN (VALUES ${columnTypes.join(', ')})`;
  /** A type agents see: the system's own, a listed table's row type, or one in a visible schema or of a visible column. */
  const visibleType = (t: string): string => {
    const noRelation = (p: string): string => `${p}typrelid OPERATOR(pg_catalog.=) 0::pg_catalog.oid`;
    const element =
      `${t}typelem OPERATOR(pg_catalog.=) 0::pg_catalog.oid OR ${t}typelem IN ` +
      `(SELECT e.oid FROM pg_catalog.pg_type e WHERE ${noRelation('e.')} OR ${isListed('e.typrelid')})`;
    // A domain's base type goes with it (asyncpg reads it to decode the domain).
    const base = `${t}oid IN (SELECT b.typbasetype FROM pg_catalog.pg_type b WHERE ${ofColumn('b.oid')})`;
    return (
      `${system(`${t}oid`)} OR ${isListed(`${t}typrelid`)} OR (${noRelation(t)} AND (${element}) AND ` +
      `(${inVisibleSchema(`${t}typnamespace`)} OR ${ofColumn(`${t}oid`)} OR ${base}))`
    );
  };
  /** `col` is a type agents see: through pg_type when it is listed, else the visible columns' own. */
  const ofVisibleType = (col: string): string =>
    listed.has('pg_catalog.pg_type')
      ? `${system(col)} OR ${col} IN (SELECT t.oid FROM pg_catalog.pg_type t WHERE ${visibleType('t.')})`
      : `${system(col)} OR ${ofColumn(col)}`;
  const indexesOfListed = listed.has('pg_catalog.pg_index')
    ? ` OR oid IN (SELECT i.indexrelid FROM pg_catalog.pg_index i WHERE ${visibleIndex('i.')})`
    : '';

  const filters: Record<string, () => string> = {
    'information_schema.tables': () =>
      inValues(
        'table_schema::text, table_name::text',
        visible.map((t) => `(${lit(t.schema)}, ${lit(t.name)})`),
      ),
    'information_schema.columns': () =>
      inValues(
        'table_schema::text, table_name::text, column_name::text',
        visible.flatMap((t) =>
          t.columns
            .filter((c) => !t.hidden.has(c.name))
            .map((c) => `(${lit(t.schema)}, ${lit(t.name)}, ${lit(c.name)})`),
        ),
      ),
    'pg_catalog.pg_class': () => `${about('oid')} OR ${isOwnedSequence('oid')}${indexesOfListed}`,
    'pg_catalog.pg_sequence': () => isOwnedSequence('seqrelid'),
    // Settings fixed when the server was built or the cluster made: they tell nothing of its
    // configuration, its activity or another tenant.
    'pg_catalog.pg_settings': () => `name IN (${presetSettings.map(lit).join(', ')})`,
    'pg_catalog.pg_namespace': () =>
      `${system('oid')} OR nspname::text IN (${[...new Set(visible.map((t) => lit(t.schema)))].join(', ') || 'NULL'})`,
    'pg_catalog.pg_attribute': () => `${about('attrelid')} AND ${hiddenColumns('attrelid', 'attnum')}`,
    'pg_catalog.pg_attrdef': () => `${about('adrelid')} AND ${hiddenColumns('adrelid', 'adnum')}`,
    // A constraint on a hidden column names it and shows its check; a foreign key to an unlisted
    // table (or its hidden column) names that table in its definition.
    // A domain's constraints go with the domain: one in a schema agents do not see would name it
    // and show its check (red team, round 24).
    'pg_catalog.pg_constraint': () =>
      `(CASE WHEN conrelid OPERATOR(pg_catalog.=) 0::pg_catalog.oid THEN (${ofVisibleType('contypid')}) ` +
      `ELSE ${about('conrelid')} END) AND ` +
      `(confrelid OPERATOR(pg_catalog.=) 0::pg_catalog.oid OR ${about('confrelid')}) AND ` +
      `NOT ${touchesHidden('conrelid', 'conkey')} AND NOT ${touchesHidden('confrelid', 'confkey')}`,
    'pg_catalog.pg_index': () => visibleIndex(''),
    'pg_catalog.pg_inherits': () => `${about('inhrelid')} AND ${about('inhparent')}`,
    // A partition key on a hidden column tells which column it is.
    'pg_catalog.pg_partitioned_table': () =>
      `${about('partrelid')} AND NOT ${touchesHidden('partrelid', 'partattrs::pg_catalog.int2[]')}`,
    // A table's row type and its array type name the table.
    'pg_catalog.pg_type': () => visibleType(''),
    'pg_catalog.pg_enum': () => ofVisibleType('enumtypid'),
    'pg_catalog.pg_range': () => ofVisibleType('rngtypid'),
    'pg_catalog.pg_collation': () => `${system('oid')} OR ${inVisibleSchema('collnamespace')}`,
    // Comments on relations and columns follow them. Comments on other objects of the database's
    // own go: one on a constraint, trigger or policy speaks of its table, listed or not (red team,
    // round 11); the system's own objects keep theirs.
    'pg_catalog.pg_description': () =>
      `CASE WHEN classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass ` +
      `THEN ${about('objoid')} AND ${hiddenColumns('objoid', 'objsubid')} ELSE ${system('objoid')} END`,
  };
  for (const empty of emptyIntrospection) filters[empty] = () => 'false';
  const views = new Map<string, Node>();
  for (const qname of listed) {
    const filter = filters[qname];
    const columns = selectList(qname, catalog);
    // A relation with neither rows to filter nor columns to cast is read as it is.
    if (filter === undefined && columns === '*') continue;
    const where = filter === undefined ? '' : ` WHERE ${filter()}`;
    const stmt = parseSql(`SELECT ${columns} FROM ${qname}${where} OFFSET 0`).stmts[0]?.stmt;
    if (!stmt) throw new Error(`could not build the agents' view of ${qname}`);
    // Only the agent's own literals carry a location into a rewrite: the decision cache finds them by it.
    views.set(qname, stripLocations(stmt) as Node);
  }
  return views;
}
