import { execFileSync } from 'node:child_process';
import { chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../test/support/embedded.js';
import { makeTempDir, onCleanup, spawnTracked, stopChild, waitForPort } from './processes.js';
import type { Endpoint } from './targets.js';

const PGBOUNCER = process.env.PGBOUNCER ?? '/usr/sbin/pgbouncer';

/** PgBouncer refuses to run as root; these are the accounts it may switch to, best first. */
const unprivilegedUsers = ['postgres', 'nobody'];

function ids(user: string): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}

/** userlist.txt quoting: a double quote inside a value is doubled. */
const quote = (s: string): string => `"${s.replaceAll('"', '""')}"`;

/**
 * PgBouncer in session mode in front of `upstream`: the same pooling model as pgwarden (one server
 * connection per client session), so the two are a like-for-like comparison of proxy cost.
 * https://www.pgbouncer.org/config.html
 */
export async function startPgBouncer(upstream: Endpoint, maxClients: number): Promise<Endpoint> {
  const dir = makeTempDir('pgwarden-bench-pgbouncer-');
  const port = await freePort();
  const userlist = join(dir, 'userlist.txt');
  const ini = join(dir, 'pgbouncer.ini');
  // A plaintext password in auth_file lets PgBouncer do SCRAM both with the client and the server.
  writeFileSync(userlist, `${quote(upstream.user)} ${quote(upstream.password)}\n`, { mode: 0o600 });
  writeFileSync(
    ini,
    [
      '[databases]',
      `${upstream.database} = host=${upstream.host} port=${upstream.port} dbname=${upstream.database}`,
      '',
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      // No Unix socket: it would land in /tmp and could clash with another PgBouncer.
      'unix_socket_dir =',
      'auth_type = scram-sha-256',
      `auth_file = ${userlist}`,
      'pool_mode = session',
      `max_client_conn = ${maxClients + 10}`,
      `default_pool_size = ${maxClients + 2}`,
      'log_connections = 0',
      'log_disconnections = 0',
      'log_stats = 0',
      'stats_period = 3600',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );

  const args: string[] = [];
  if (process.getuid?.() === 0) {
    const user = unprivilegedUsers.find((u) => ids(u) !== undefined);
    if (user === undefined)
      throw new Error(`pgbouncer cannot run as root and none of ${unprivilegedUsers} exists`);
    const { uid, gid } = ids(user) ?? { uid: 0, gid: 0 };
    // PgBouncer reads auth_file again after switching user (on reload and, in some versions, lazily).
    for (const f of [dir, userlist, ini]) chownSync(f, uid, gid);
    args.push('-u', user);
  }
  args.push(ini);

  const p = spawnTracked(PGBOUNCER, args);
  onCleanup('pgbouncer', () => stopChild(p));
  await waitForPort('127.0.0.1', port, 10_000, () =>
    p.child.exitCode !== null ? `pgbouncer exited with ${p.child.exitCode}:\n${p.output()}` : undefined,
  );
  return { ...upstream, host: '127.0.0.1', port, ...(p.child.pid === undefined ? {} : { pid: p.child.pid }) };
}
