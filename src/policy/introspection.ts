/**
 * What psql's \d <table> reads beside the relations below. Agents are told of no policies,
 * triggers, rewrite rules, extended statistics, publications or roles: these read as empty
 * (introspection-views.ts). Their definitions name other tables, functions and roles, and roles
 * are the cluster's.
 */
export const emptyIntrospection = [
  'pg_catalog.pg_policy',
  'pg_catalog.pg_trigger',
  'pg_catalog.pg_rewrite',
  'pg_catalog.pg_statistic_ext',
  'pg_catalog.pg_publication',
  'pg_catalog.pg_publication_namespace',
  'pg_catalog.pg_publication_rel',
  'pg_catalog.pg_roles',
] as const;

/**
 * System catalog relations that agents may read when the rules list them (`introspection:`).
 * They describe the schema, never row data: pg_statistic, pg_stats, pg_proc (function bodies),
 * pg_views / pg_rules (definitions), pg_authid and the pg_stat_* views are not here, because they
 * hold values, source text or cluster-wide state. Agents read them filtered to the listed tables
 * and the system's own objects (introspection-views.ts); pg_settings to a few constants.
 *
 * The first four are what pgbench reads at start (it asks whether pgbench_accounts is partitioned).
 */
export const safeIntrospection = [
  'pg_catalog.pg_class',
  'pg_catalog.pg_namespace',
  'pg_catalog.pg_partitioned_table',
  'pg_catalog.pg_inherits',
  'pg_catalog.pg_type',
  'pg_catalog.pg_attribute',
  'pg_catalog.pg_index',
  'pg_catalog.pg_constraint',
  'pg_catalog.pg_attrdef',
  'pg_catalog.pg_enum',
  'pg_catalog.pg_range',
  'pg_catalog.pg_am',
  'pg_catalog.pg_collation',
  // Comments on tables and columns: SQLAlchemy's inspector (LangChain's SQLDatabase) reads them.
  'pg_catalog.pg_description',
  // The settings (start, increment, bounds) of sequences that identity and serial columns own:
  // SQLAlchemy reads them for identity columns. Never their current value.
  'pg_catalog.pg_sequence',
  // Only the preset options (compile-time limits and the server's version): pgJDBC's
  // getImportedKeys reads max_index_keys.
  'pg_catalog.pg_settings',
  ...emptyIntrospection,
  // What MCP Postgres servers read to list tables and their columns. Like pg_class, they name
  // every relation the service role can see; they hold no row data.
  'information_schema.tables',
  'information_schema.columns',
] as const;

export type SafeIntrospection = (typeof safeIntrospection)[number];
