import { startEmbeddedPostgres } from '../../test/support/embedded.js';
import { onCleanup, postmasterGone, registerPostgresDataDir } from './processes.js';
import type { Endpoint } from './targets.js';

/**
 * An embedded PostgreSQL for one benchmark run, stopped at cleanup (and its data dir swept if the
 * script dies), and its superuser's endpoint on the postgres database.
 */
export async function startBenchServer(maxConnections: number): Promise<Endpoint> {
  const server = await startEmbeddedPostgres({ postgresFlags: ['-c', `max_connections=${maxConnections}`] });
  registerPostgresDataDir(server.dataDir);
  onCleanup('postgres', () => Promise.race([server.destroy(), postmasterGone(server.dataDir, 15_000)]));
  return {
    host: '127.0.0.1',
    port: server.port,
    database: 'postgres',
    user: 'postgres',
    password: 'postgres',
  };
}
