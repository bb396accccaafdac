import { parseArgs } from 'node:util';
import { pino, type Logger } from 'pino';
import { loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';

/** `--config <file>` (default pgwarden.yaml), read and validated, and a logger at its level on stderr. */
export function configFromArgs(args: string[]): { config: Config; logger: Logger } {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string', default: 'pgwarden.yaml' } },
    strict: true,
  });
  const config = loadConfigFile(values.config);
  return { config, logger: pino({ level: config.logLevel }, pino.destination(2)) };
}

/** Resolves at the first SIGINT or SIGTERM, for commands that run until stopped. */
export function untilStopSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
