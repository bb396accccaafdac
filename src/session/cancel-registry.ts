import { randomInt } from 'node:crypto';

/**
 * Maps the key data pgwarden gives each client (BackendKeyData) to the session's upstream
 * backend, so a CancelRequest reaches the right server process without revealing its pid.
 */
export class CancelRegistry<T> {
  private readonly byPid = new Map<number, { secret: number; target: T }>();

  register(target: T): { processId: number; secretKey: number } {
    let processId: number;
    do processId = randomInt(1, 2 ** 31 - 1);
    while (this.byPid.has(processId));
    const secretKey = randomInt(-(2 ** 31), 2 ** 31 - 1);
    this.byPid.set(processId, { secret: secretKey, target });
    return { processId, secretKey };
  }

  unregister(processId: number): void {
    this.byPid.delete(processId);
  }

  /** The target if the pid and secret match, else undefined (as Postgres, ignore silently). */
  lookup(processId: number, secretKey: Buffer): T | undefined {
    const entry = this.byPid.get(processId);
    if (!entry || secretKey.length !== 4 || secretKey.readInt32BE(0) !== entry.secret) return undefined;
    return entry.target;
  }
}
