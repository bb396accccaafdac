import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditConfigSchema, type AuditConfig, type AuditConfigInput } from '../../src/audit/config.js';
import { AuditReader } from '../../src/audit/store-reader.js';
import { createTestDatabase, type TestDatabase } from './db.js';

/** A test database as the decision log's store, a spool root beside it, and a reader over both. */
export interface TestAuditStore {
  readonly db: TestDatabase;
  readonly spoolRoot: string;
  readonly reader: AuditReader;
  /** A durable, NDJSON-off log config delivering here quickly; `over` replaces top-level keys. */
  config(over?: AuditConfigInput): AuditConfig;
  /** Closes the reader, drops the database and removes the spool root. */
  close(): Promise<void>;
}

export async function startTestAuditStore(name: string): Promise<TestAuditStore> {
  const db = await createTestDatabase(name);
  const spoolRoot = mkdtempSync(join(tmpdir(), 'pgw-spool-'));
  const reader = new AuditReader(db.url);
  return {
    db,
    spoolRoot,
    reader,
    config: (over = {}) =>
      auditConfigSchema.parse({
        ndjson: 'off',
        store: { url: db.url, pollIntervalMs: 10 },
        spool: { dir: spoolRoot },
        ...over,
      }),
    close: async () => {
      await reader.close();
      await db.drop();
      rmSync(spoolRoot, { recursive: true, force: true });
    },
  };
}
