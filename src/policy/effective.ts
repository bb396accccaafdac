import { parseSql } from '../sql/parse.js';
import { stripLocations, type Node } from '../sql/ast.js';
import { findRelation, splitQualified, type Catalog, type CatalogColumn } from './catalog.js';
import { introspectionViews } from './introspection-views.js';
import type { AccessKind, Rules, TableOverride, TableRule } from './rules-schema.js';

/** One table as a caller with a given set of roles sees it, resolved against the catalog. */
export interface TablePolicy {
  readonly qname: string;
  readonly schema: string;
  readonly name: string;
  readonly scope: 'tenant' | 'global' | 'parent';
  readonly tenantColumn: CatalogColumn | undefined;
  /** The cast target for the tenant value, parsed once: a TypeName node. */
  readonly tenantTypeName: Node | undefined;
  readonly parent:
    { readonly policy: TablePolicy; readonly foreignKey: string; readonly references: string } | undefined;
  readonly access: ReadonlySet<AccessKind>;
  /** Every column in attnum order. */
  readonly columns: readonly CatalogColumn[];
  /** Columns agents may not see at all (not in the allowlist, or denied). */
  readonly hidden: ReadonlySet<string>;
  /** column -> parsed mask expression. */
  readonly masks: ReadonlyMap<string, Node>;
  /**
   * Columns whose value is computed when read (every column of a view, a virtual generated
   * column): a condition on one runs an expression that may raise on another tenant's row.
   */
  readonly computed: ReadonlySet<string>;
  readonly rowLimit: number | undefined;
  readonly ruleIds: readonly string[];
}

export interface EffectivePolicy {
  /** Keyed "schema.table". */
  readonly tables: ReadonlyMap<string, TablePolicy>;
  /** Qualified names of user-defined functions agents may call. */
  readonly functions: ReadonlySet<string>;
  readonly introspection: ReadonlySet<string>;
  /**
   * What stands in for a listed catalog relation or information_schema view: its rows about the
   * tables the rules name (and the columns agents may see), as a parsed SELECT.
   */
  readonly introspectionViews: ReadonlyMap<string, Node>;
  /** Tenant column names of tenant-scoped tables, to spot literal cross-tenant predicates. */
  readonly tenantColumnNames: ReadonlySet<string>;
}

function parseExpr(sql: string, what: string): Node {
  const parsed = parseSql(`SELECT ${sql}`);
  const sel = parsed.stmts[0]?.stmt.SelectStmt as { targetList?: { ResTarget: { val: Node } }[] } | undefined;
  const val = sel?.targetList?.[0]?.ResTarget.val;
  if (parsed.stmts.length !== 1 || !val || sel?.targetList?.length !== 1)
    throw new Error(`${what}: not a single SQL expression`);
  // Only the agent's own literals carry a location into a rewrite: the decision cache finds them by it.
  return stripLocations(val) as Node;
}

export function parseTypeName(sqlType: string): Node {
  const cast = parseExpr(`NULL::${sqlType}`, `type ${sqlType}`) as { TypeCast?: { typeName: Node } };
  if (!cast.TypeCast) throw new Error(`type ${sqlType}: not a type name`);
  return { TypeName: cast.TypeCast.typeName };
}

/**
 * The tenant column's type without its length: pgwarden's tenant literal is cast to it, and an
 * explicit cast to varchar(4) or char(4) cuts 'acme-eu' to 'acme' (another tenant's rows) where
 * the length-free type makes a read match nothing and a write fail as too long.
 */
function withoutLength(typeName: Node): Node {
  const rest = { ...(typeName as { TypeName: Record<string, unknown> }).TypeName };
  delete rest.typmods;
  return { TypeName: rest };
}

function applyOverride(base: TableRule, o: TableOverride): TableRule {
  const out: TableRule = { ...base };
  if (o.access) out.access = o.access;
  if (o.columns) out.columns = o.columns;
  if (o.row_limit !== undefined) out.row_limit = o.row_limit ?? undefined;
  return out;
}

/**
 * Applies role overrides (in the order roles appear in the rules, so the result never depends
 * on the token's role order) and resolves every table against the catalog. Throws on a mismatch;
 * rules are checked against the catalog before this runs, so that is a bug, not a user error.
 */
export function effectivePolicy(rules: Rules, catalog: Catalog, roles: readonly string[]): EffectivePolicy {
  const roleNames = Object.keys(rules.roles ?? {}).filter((r) => roles.includes(r));
  const tables = new Map<string, TablePolicy>();
  const build = (qname: string): TablePolicy => {
    const done = tables.get(qname);
    if (done) return done;
    const base = rules.tables[qname];
    if (!base) throw new Error(`${qname} is not in the rules`);
    let rule = base;
    const ruleIds = [`tables.${qname}`];
    for (const role of roleNames) {
      const o = rules.roles?.[role]?.tables[qname];
      if (o) {
        rule = applyOverride(rule, o);
        ruleIds.push(`roles.${role}.tables.${qname}`);
      }
    }
    const [schema, name] = splitQualified(qname);
    const rel = findRelation(catalog, schema, name);
    if (!rel) throw new Error(`${qname} does not exist in the catalog`);
    const allow = rule.columns?.allow;
    const deny = new Set(rule.columns?.deny ?? []);
    const hidden = new Set(
      rel.columns
        .filter((c) => deny.has(c.name) || (allow !== undefined && !allow.includes(c.name)))
        .map((c) => c.name),
    );
    const masks = new Map<string, Node>();
    for (const [col, expr] of Object.entries(rule.columns?.mask ?? {}))
      masks.set(col, parseExpr(expr, `tables.${qname}.columns.mask.${col}`));
    const tenantColumn =
      rule.tenant_column === undefined ? undefined : rel.columns.find((c) => c.name === rule.tenant_column);
    if (rule.tenant_column !== undefined && !tenantColumn) throw new Error(`${qname}: no tenant column`);
    const parent = rule.parent
      ? {
          policy: build(rule.parent.table),
          foreignKey: rule.parent.foreign_key,
          references: rule.parent.references,
        }
      : undefined;
    const policy: TablePolicy = {
      qname,
      schema,
      name,
      scope: rule.scope,
      tenantColumn,
      tenantTypeName: tenantColumn ? withoutLength(parseTypeName(tenantColumn.sqlType)) : undefined,
      parent,
      access: new Set(rule.access),
      columns: rel.columns,
      hidden,
      masks,
      computed: new Set(rel.columns.filter((c) => rel.kind === 'v' || c.virtual).map((c) => c.name)),
      rowLimit: rule.row_limit,
      ruleIds,
    };
    tables.set(qname, policy);
    return policy;
  };
  for (const qname of Object.keys(rules.tables)) build(qname);
  const functions = new Set(rules.functions ?? []);
  for (const role of roleNames) for (const f of rules.roles?.[role]?.functions ?? []) functions.add(f);
  const tenantColumnNames = new Set<string>();
  for (const t of tables.values()) if (t.tenantColumn) tenantColumnNames.add(t.tenantColumn.name);
  const introspection = new Set(rules.introspection ?? []);
  return {
    tables,
    functions,
    introspection,
    introspectionViews: introspectionViews(introspection, tables, catalog),
    tenantColumnNames,
  };
}

/** Whether a table needs the scoped subquery (rows or columns to hide), or can stay as written. */
export function needsSubquery(t: TablePolicy): boolean {
  return t.scope !== 'global' || t.hidden.size > 0 || t.masks.size > 0;
}
