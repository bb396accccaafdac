import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** Runs SQL as the superuser in this database. */
  sql<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** A fresh database on the run's server, so test files never see each other's tables. */
export async function createTestDatabase(prefix = 't'): Promise<TestDatabase> {
  const admin = new URL(inject('databaseUrl'));
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const c = new pg.Client({ connectionString: admin.toString() });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  const url = new URL(admin.toString());
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  // DROP DATABASE ... WITH (FORCE) ends connections still closing after pool.end(); that is expected.
  pool.on('error', () => {});
  return {
    url: url.toString(),
    name,
    host: url.hostname,
    port: Number(url.port || 5432),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    sql: async <T extends pg.QueryResultRow>(text: string, params?: unknown[]) =>
      (await pool.query<T>(text, params)).rows,
    drop: async () => {
      await pool.end();
      const d = new pg.Client({ connectionString: admin.toString() });
      await d.connect();
      await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await d.end();
    },
  };
}

/**
 * The client tests' dataset: `items` (ids 1..n, names "item <id>"), which the tests' rules list,
 * and `secrets` (one row, "hidden"), which they do not, so a leak shows as the word in a result.
 */
export async function seedItemsAndSecrets(db: TestDatabase, items: number): Promise<void> {
  await db.sql(`CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
    INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, ${items}) g;
    CREATE TABLE secrets (id int, secret text); INSERT INTO secrets VALUES (1, 'hidden');`);
}
