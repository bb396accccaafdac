import { join } from 'node:path';
import { freePort } from '../../test/support/embedded.js';
import { repoRoot } from './pgwarden.js';
import { onCleanup, spawnTracked, stopChild, waitForPort } from './processes.js';
import type { Endpoint } from './targets.js';

/** A bare Node.js TCP pipe (bench/node-pipe.ts) in its own process, in front of `upstream`. */
export async function startNodePipe(upstream: Endpoint): Promise<Endpoint> {
  const port = await freePort();
  const p = spawnTracked(
    process.execPath,
    [
      '--import',
      'tsx',
      join(repoRoot, 'bench/node-pipe.ts'),
      String(port),
      upstream.host,
      String(upstream.port),
    ],
    { cwd: repoRoot },
  );
  onCleanup('node-pipe', () => stopChild(p));
  await waitForPort('127.0.0.1', port, 15_000, () =>
    p.child.exitCode !== null ? `node-pipe exited with ${p.child.exitCode}:\n${p.output()}` : undefined,
  );
  return { ...upstream, host: '127.0.0.1', port, ...(p.child.pid === undefined ? {} : { pid: p.child.pid }) };
}
