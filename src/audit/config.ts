import { z } from 'zod';

/** The decision log's configuration (the `audit` key of the pgwarden config). See docs/config.md. */
export const auditConfigSchema = z
  .object({
    /** NDJSON decision lines: a file path, "stdout", or "off". */
    ndjson: z.string().default('stdout'),
    redactParameters: z.boolean().default(true),
  })
  .strict();

export type AuditConfig = z.infer<typeof auditConfigSchema>;
