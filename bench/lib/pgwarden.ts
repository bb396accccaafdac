import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { mintToken } from '../../src/identity/token.js';
import { freePort } from '../../test/support/embedded.js';
import { makeTempDir, onCleanup, spawnTracked, stopChild, waitForPort } from './processes.js';
import type { Endpoint } from './targets.js';

export const repoRoot = new URL('../../', import.meta.url).pathname;

/**
 * The statement_timeout pgwarden pins on its sessions in the benchmark. The server arms a timer for
 * every statement when one is set (a few µs each), so the script sets the same value on the
 * database for every target: the figures then compare paths, not server settings.
 */
export const STATEMENT_TIMEOUT_MS = 30_000;

export interface PgwardenOptions {
  /** Shown in errors and temp dir names, e.g. "pgwarden-audit". */
  readonly name: string;
  readonly rulesPaths: readonly string[];
  /** The `audit` section of the config, as the audit module's schema defines it. */
  readonly audit: NonNullable<ConfigInput['audit']>;
  /** The tenant claim of the benchmark's token. */
  readonly tenant: string;
  /** How long the token must stay valid: the whole run, or sessions end at their next statement. */
  readonly tokenTtlSeconds: number;
  readonly maxClients: number;
  /** Write a V8 CPU profile of the pgwarden process into this directory when it exits. */
  readonly cpuProfileDir?: string;
}

/**
 * pgwarden as its own process (`pgwarden start --config ...`), as it runs in production, so its
 * event loop never competes with this script's. The config is validated here first so that a
 * schema change shows up as a clear message rather than as a child that exits.
 */
export async function startPgwarden(upstream: Endpoint, o: PgwardenOptions): Promise<Endpoint> {
  const bin = join(repoRoot, 'bin/pgwarden.js');
  if (!existsSync(join(repoRoot, 'src/main.ts')))
    throw new Error(
      'src/main.ts does not exist yet: pgwarden cannot start (run with --targets direct,pgbouncer)',
    );
  const dir = makeTempDir(`pgwarden-bench-${o.name}-`);
  const port = await freePort();
  const input: ConfigInput = {
    listen: { host: '127.0.0.1', port },
    upstream: {
      host: upstream.host,
      port: upstream.port,
      database: upstream.database,
      user: upstream.user,
      password: upstream.password,
    },
    auth: { hs256Secret: randomBytes(32).toString('hex') },
    // Loopback only, like PgBouncer here: the figures compare proxy cost, not TLS.
    tls: { allowPlaintext: 'loopback' },
    session: { statementTimeoutMs: STATEMENT_TIMEOUT_MS },
    limits: { maxConnections: o.maxClients + 10 },
    rules: { paths: [...o.rulesPaths] },
    audit: o.audit,
    logLevel: 'warn',
  };
  const config = validateConfig(input, `${o.name} config`);
  const configFile = join(dir, 'pgwarden.yaml');
  writeFileSync(configFile, stringify(input), { mode: 0o600 });

  const profile = o.cpuProfileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', o.cpuProfileDir];
  const p = spawnTracked(process.execPath, [...profile, bin, 'start', '--config', configFile], {
    cwd: repoRoot,
  });
  onCleanup(o.name, () => stopChild(p));
  await waitForPort('127.0.0.1', port, 30_000, () =>
    p.child.exitCode !== null ? `${o.name} exited with ${p.child.exitCode}:\n${p.output()}` : undefined,
  );
  const token = await mintToken(config.auth, {
    tenant: o.tenant,
    human: 'bench@pgwarden.test',
    agent: 'pgbench',
    ttlSeconds: o.tokenTtlSeconds,
  });
  return {
    host: '127.0.0.1',
    port,
    database: upstream.database,
    user: 'pgbench',
    password: token,
    ...(p.child.pid === undefined ? {} : { pid: p.child.pid }),
  };
}
