import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditConfigSchema } from '../src/audit/config.js';
import { startDecisionLog } from '../src/audit/decision-log.js';
import { sampleOutcome, sampleRecord } from '../src/audit/sample-records.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';

/**
 * The NDJSON output and the store share the shipper's thread. A SIEM collector that stops reading
 * stdout must stall only the NDJSON lines: records still reach the store.
 */
let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase('audit_ndjson');
  dir = mkdtempSync(join(tmpdir(), 'pgw-nd-'));
});

afterAll(async () => {
  await db.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('NDJSON on a stdout nobody reads', () => {
  it('does not hold back delivery to the store', async () => {
    const root = resolve(import.meta.dirname, '..');
    const script = `
      import { startDecisionLog } from '${root}/src/audit/decision-log.ts';
      import { auditConfigSchema } from '${root}/src/audit/config.ts';
      import { sampleRecord, sampleOutcome } from '${root}/src/audit/sample-records.ts';
      import pino from 'pino';
      const cfg = auditConfigSchema.parse({ ndjson: 'stdout', store: { url: ${JSON.stringify(db.url)}, pollIntervalMs: 10 },
        spool: { dir: ${JSON.stringify(join(dir, 'spool'))} } });
      const log = await startDecisionLog(cfg, { instanceId: 'nd-stuck', upstreamUrl: ${JSON.stringify(db.url)}, logger: pino({ level: 'info' }, pino.destination(2)) });
      for (let i = 0; i < 3000; i++) {
        const r = sampleRecord({ instanceId: 'nd-stuck', sessionId: 's', seq: i });
        log.decide(r);
        log.complete(sampleOutcome(r));
      }
      const ok = await log.flushToStore(30000);
      process.stderr.write('flushed ' + ok + ' ' + JSON.stringify(log.stats()) + '\\n');
      process.exit(0);
    `;
    // stdout is a pipe this test never reads: it fills after 64 KB (3000 statements are ~4 MB).
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pause();
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise<void>((done) => {
      const t = setInterval(() => {
        if (err.includes('flushed') || child.exitCode !== null) {
          clearInterval(t);
          done();
        }
      }, 50);
    });
    child.kill('SIGKILL');
    expect(err).toContain('flushed true');
    const [row] = await db.sql<{ n: string }>(
      `SELECT count(*) AS n FROM pgwarden_decisions WHERE instance_id = 'nd-stuck'`,
    );
    expect(Number(row?.n)).toBe(3000);
  });
});

describe('NDJSON file rotation', () => {
  it('reopens the file by its name (SIGHUP after logrotate): every line once, in the moved file or the new one', async () => {
    const file = join(dir, 'rotated', 'decisions.ndjson');
    const cfg = auditConfigSchema.parse({
      ndjson: file,
      store: { url: db.url, pollIntervalMs: 10 },
      spool: { dir: join(dir, 'spool-rotated') },
    });
    const log = await startDecisionLog(cfg, {
      instanceId: 'nd-rotated',
      upstreamUrl: db.url,
      logger: pino({ level: 'silent' }),
    });
    const ids: string[] = [];
    const write = (from: number, n: number): void => {
      for (let seq = from; seq < from + n; seq++) {
        const r = sampleRecord({ instanceId: 'nd-rotated', sessionId: 'rot', seq });
        ids.push(r.id);
        log.decide(r);
        log.complete(sampleOutcome(r));
      }
    };
    const lines = (f: string): string[] =>
      existsSync(f)
        ? readFileSync(f, 'utf8')
            .split('\n')
            .filter((l) => l !== '')
        : [];
    const until = async (ok: () => boolean): Promise<void> => {
      for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(ok()).toBe(true);
    };
    try {
      write(0, 50);
      await until(() => lines(file).length === 100);
      renameSync(file, `${file}.1`);
      log.reopenNdjson();
      write(50, 50);
      await until(() => lines(`${file}.1`).length + lines(file).length === 200);
      // A decision and its outcome per statement, each written once, none lost, across both files.
      const all = [...lines(`${file}.1`), ...lines(file)].join('\n');
      for (const id of ids) expect(all.split(id).length - 1, id).toBe(2);
      // The statements after the rotation went to the new file.
      expect(lines(file).join('\n')).toContain(ids[ids.length - 1]!);
      expect(lines(`${file}.1`).join('\n')).toContain(ids[0]!);
    } finally {
      await log.close();
    }
  });
});
