import { z } from 'zod';
import { safeIntrospection } from './introspection.js';

/**
 * The rules data owners write (rules/*.yaml). Strict: unknown keys are errors.
 * Reference: docs/rules.md (kept in step with this file; rules/schema.json is generated from it).
 */
export const accessKinds = ['select', 'insert', 'update', 'delete'] as const;
export type AccessKind = (typeof accessKinds)[number];

/** A Postgres identifier as written in rules: already case-folded, as in the catalog. */
const identifier = z.string().min(1).max(63);
/** "schema.table", both parts required so rules never depend on search_path. */
const qualifiedName = z.string().regex(/^[^.\s]+\.[^.\s]+$/, 'a schema-qualified name such as public.orders');

const columnsSchema = z
  .object({
    /** When given, only these columns exist for agents (an allowlist); otherwise every column not denied. */
    allow: z.array(identifier).optional(),
    deny: z.array(identifier).default([]),
    /** column -> SQL expression over the table's columns; agents only ever see the expression's value. */
    mask: z.record(identifier, z.string().min(1)).default({}),
  })
  .strict();

const parentSchema = z
  .object({
    /** The tenant-scoped table this one belongs to, e.g. public.orders. */
    table: qualifiedName,
    /** Column of this table that references the parent, e.g. order_id. */
    foreign_key: identifier,
    /** Column of the parent it references (default id). */
    references: identifier.default('id'),
  })
  .strict();

export const tableRuleSchema = z
  .object({
    tenant_column: identifier.optional(),
    /** tenant: rows of the caller's tenant; global: the same rows for everyone; parent: through `parent`. */
    scope: z.enum(['tenant', 'global', 'parent']).default('tenant'),
    parent: parentSchema.optional(),
    access: z.array(z.enum(accessKinds)).min(1),
    columns: columnsSchema.optional(),
    /** Top-level SELECTs that read this table return at most this many rows. */
    row_limit: z.number().int().positive().optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.scope === 'tenant' && t.tenant_column === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['tenant_column'],
        message: 'a tenant-scoped table needs tenant_column',
      });
    if (t.scope !== 'tenant' && t.tenant_column !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['tenant_column'],
        message: `scope ${t.scope} takes no tenant_column`,
      });
    if (t.scope === 'parent' && t.parent === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['parent'],
        message: 'scope parent needs parent: { table, foreign_key }',
      });
    if (t.scope !== 'parent' && t.parent !== undefined)
      ctx.addIssue({ code: 'custom', path: ['parent'], message: 'parent is only for scope: parent' });
  });

/** Per-role overrides: the fields given replace the base table rule's fields for callers with that role. */
const tableOverrideSchema = z
  .object({
    access: z.array(z.enum(accessKinds)).optional(),
    columns: columnsSchema.optional(),
    row_limit: z.number().int().positive().nullable().optional(),
  })
  .strict();

const roleSchema = z
  .object({
    tables: z.record(qualifiedName, tableOverrideSchema).default({}),
    functions: z.array(qualifiedName).default([]),
  })
  .strict();

export const rulesSchema = z
  .object({
    $schema: z.string().optional(),
    version: z.literal(1),
    tenant: z
      .object({ claim: z.string().default('tenant') })
      .strict()
      .default({ claim: 'tenant' }),
    tables: z.record(qualifiedName, tableRuleSchema).default({}),
    /** Extra (user-defined) functions agents may call, schema-qualified, e.g. public.order_total. */
    functions: z.array(qualifiedName).optional(),
    /** System catalog relations agents may read, from pgwarden's documented safe set. */
    introspection: z.array(z.enum(safeIntrospection)).optional(),
    /** Keyed on a role from the token's roles claim. */
    roles: z.record(identifier, roleSchema).optional(),
  })
  .strict();

export type Rules = z.infer<typeof rulesSchema>;
export type TableRule = z.infer<typeof tableRuleSchema>;
export type TableOverride = z.infer<typeof tableOverrideSchema>;
