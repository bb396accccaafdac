import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * Where the machine's CPU went during one pgbench run, from /proc (Linux only), so a figure can be
 * explained and not only read: on a small machine client, proxy and server share the same cores,
 * and the throughput of every target is bounded by the sum of their costs per transaction.
 */

/** Jiffies per second (USER_HZ); 100 on every Linux build we know, asked once to be sure. */
const ticksPerSecond = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export interface CpuSnapshot {
  /** Busy jiffies of the whole machine (everything but idle and iowait). */
  readonly machine: number;
  /** The proxy process's own user + system jiffies (0 without a proxy). */
  readonly proxy: number;
  /** Of which in user mode (its own code and the runtime's; the rest is its system calls). */
  readonly proxyUser: number;
  /** Jiffies of this script's reaped children: pgbench, which exits inside the window. */
  readonly client: number;
}

/** Fields of /proc/<pid>/stat after the command name, which may itself hold spaces and parens. */
function statFields(pid: number | 'self'): string[] {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2).split(' ');
}

export function cpuSnapshot(proxyPid: number | undefined): CpuSnapshot | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const [, ...jiffies] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/);
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    const [user, nice, system, , , irq, softirq, steal] = jiffies.map(Number);
    const machine = [user, nice, system, irq, softirq, steal].reduce<number>((a, b) => a + (b ?? 0), 0);
    // utime and stime are fields 14 and 15 of stat, cutime and cstime 16 and 17 (1-based, with
    // pid and comm as fields 1 and 2).
    const proxy = proxyPid === undefined ? [] : statFields(proxyPid);
    const self = statFields('self');
    return {
      machine,
      proxy: Number(proxy[11] ?? 0) + Number(proxy[12] ?? 0),
      proxyUser: Number(proxy[11] ?? 0),
      client: Number(self[13]) + Number(self[14]),
    };
  } catch {
    return undefined;
  }
}

/** Microseconds of CPU per transaction, split by who spent it. */
export interface CpuPerTransaction {
  readonly client: number;
  readonly proxy: number;
  /** The proxy's user-mode share: what its code (and its runtime) cost, system calls aside. */
  readonly proxyUser: number;
  /** The server, the kernel's loopback TCP and whatever else ran: machine minus client and proxy. */
  readonly rest: number;
  readonly machine: number;
}

export function cpuPerTransaction(
  before: CpuSnapshot | undefined,
  after: CpuSnapshot | undefined,
  transactions: number,
): CpuPerTransaction | undefined {
  if (before === undefined || after === undefined || transactions <= 0) return undefined;
  const us = (jiffies: number): number => (jiffies * 1e6) / ticksPerSecond / transactions;
  const client = us(after.client - before.client);
  const proxy = us(after.proxy - before.proxy);
  const proxyUser = us(after.proxyUser - before.proxyUser);
  const machine = us(after.machine - before.machine);
  return { client, proxy, proxyUser, rest: machine - client - proxy, machine };
}
