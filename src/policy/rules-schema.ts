import { z } from 'zod';

/**
 * The rules data owners write (rules/*.yaml). Strict: unknown keys are errors.
 * Reference: docs/rules.md. This is the core shape; the policy engine extends it.
 */
export const accessKinds = ['select', 'insert', 'update', 'delete'] as const;

export const tableRuleSchema = z
  .object({
    tenant_column: z.string().optional(),
    scope: z.enum(['tenant', 'global']).default('tenant'),
    access: z.array(z.enum(accessKinds)).min(1),
    columns: z
      .object({
        deny: z.array(z.string()).default([]),
        mask: z.record(z.string(), z.string()).default({}),
      })
      .strict()
      .optional(),
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
    tables: z.record(z.string(), tableRuleSchema).default({}),
  })
  .strict();

export type Rules = z.infer<typeof rulesSchema>;
export type TableRule = z.infer<typeof tableRuleSchema>;
