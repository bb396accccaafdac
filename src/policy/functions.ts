import type { Catalog } from './catalog.js';

/**
 * Built-in functions agents may never call, although their argument types look harmless:
 * they run SQL given as a string (query_to_xml family, cursor_to_xml, ts_stat, ts_rewrite),
 * reach outside the database or the session (lo_*, dblink, pg_read_file, pg_notify, advisory
 * locks, pg_sleep), change settings (set_config) or sequences, describe objects by name or
 * by OID (format_type names the row type of any table, listed or not; satisfies_hash_partition's
 * error names any relation by OID; oidvectortypes, acldefault, makeaclitem), or tell what the
 * server does: current_query() returns the SQL pgwarden forwarded (mask expressions and the names
 * of hidden columns included), inet_* the server's and client's addresses, txid_* the transaction
 * counter, which moves with every tenant's writes. Most of these take or return a type in
 * unsafeTypes too; naming them keeps them refused whatever a catalog snapshot says. A few catalog
 * functions (format_type, pg_get_expr, pg_table_is_visible, ...) are called in a guarded form
 * instead, only for what the filtered catalogs show: rewrite/oid-guards.ts, before this list.
 */
const deniedNames = new Set([
  'query_to_xml',
  'query_to_xml_and_xmlschema',
  'query_to_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'table_to_xml',
  'table_to_xml_and_xmlschema',
  'table_to_xmlschema',
  'schema_to_xml',
  'schema_to_xml_and_xmlschema',
  'schema_to_xmlschema',
  'database_to_xml',
  'database_to_xml_and_xmlschema',
  'database_to_xmlschema',
  'ts_stat',
  'ts_rewrite',
  'set_config',
  'nextval',
  'setval',
  'currval',
  'lastval',
  'loread',
  'lowrite',
  'format_type',
  'obj_description',
  'col_description',
  'shobj_description',
  'row_security_active',
  'gin_clean_pending_list',
  'txid_current_snapshot',
  'current_setting',
  'satisfies_hash_partition',
  'oidvectortypes',
  'acldefault',
  'makeaclitem',
  'aclexplode',
  'current_query',
  'inet_server_addr',
  'inet_server_port',
  'inet_client_addr',
  'inet_client_port',
  'age',
  'mxid_age',
  // A relation named by text: follows another tenant's row versions, and errors name any relation.
  'currtid',
  'currtid2',
  // Text search internals that look a parser, dictionary or configuration up by name, or return
  // regconfig / regdictionary values an untyped literal beside them would take (red team, round 16).
  'get_current_ts_config',
  'ts_debug',
  'ts_parse',
  'ts_token_type',
  'ts_lexize',
]);

const deniedPrefixes = ['pg_', 'lo_', 'dblink', 'has_', 'to_reg', 'brin_', 'binary_upgrade', 'txid_'];

/**
 * pg_* functions that only compute on their arguments. (pg_typeof is not: it returns regtype, an
 * object-naming type; nor pg_input_is_valid and pg_input_error_info: they take a type by name, so
 * `pg_input_is_valid('internal_notes', 'regclass')` tells whether a table exists.)
 */
const allowedPgPrefixed = new Set([
  // Releases the session's own advisory locks, which agents cannot take: pools reset with it.
  'pg_advisory_unlock_all',
  'pg_size_pretty',
  'pg_size_bytes',
  'pg_column_size',
  'pg_client_encoding',
]);

/**
 * Functions initdb puts in information_schema that only compute on their arguments: pgJDBC's
 * getPrimaryKeys and getIndexInfo number index keys with _pg_expandarray (unnest with ordinality).
 */
const allowedInformationSchema = new Set(['_pg_expandarray']);

function builtinAllowed(name: string, catalog: Catalog): boolean {
  if (deniedNames.has(name)) return false;
  if (deniedPrefixes.some((p) => name.startsWith(p)) && !allowedPgPrefixed.has(name)) return false;
  return catalog.functions.pg_catalog?.[name]?.safe === true;
}

export type FunctionDecision =
  { ok: true; qualified: string } | { ok: false; qualified: string; why: string };

/**
 * Resolves a function name as Postgres would (an unqualified name is looked up in every schema of
 * the search path, pg_catalog first) and decides. A name that exists in more than one schema of
 * the path is refused unless written schema-qualified, because overload resolution could pick
 * the user-defined one for some argument types.
 * https://www.postgresql.org/docs/current/typeconv-func.html
 */
export function decideFunction(
  parts: readonly string[],
  catalog: Catalog,
  allowedUser: ReadonlySet<string>,
): FunctionDecision {
  const name = parts[parts.length - 1] ?? '';
  if (parts.length > 2) return { ok: false, qualified: parts.join('.'), why: 'cross-database reference' };
  const decide = (schema: string): FunctionDecision => {
    const qualified = `${schema}.${name}`;
    if (schema === 'pg_catalog')
      return builtinAllowed(name, catalog)
        ? { ok: true, qualified }
        : { ok: false, qualified, why: 'denied' };
    if (schema === 'information_schema' && allowedInformationSchema.has(name)) return { ok: true, qualified };
    return allowedUser.has(qualified) ? { ok: true, qualified } : { ok: false, qualified, why: 'not_listed' };
  };
  if (parts.length === 2) return decide(parts[0] ?? '');
  const homes = catalog.searchPath.filter((s) => catalog.functions[s]?.[name] !== undefined);
  if (homes.length === 0) return { ok: false, qualified: name, why: 'unknown' };
  if (homes.length > 1) return { ok: false, qualified: name, why: 'ambiguous' };
  return decide(homes[0] ?? '');
}
