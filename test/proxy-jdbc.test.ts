import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../src/policy/catalog.js';
import { createPolicyJudge } from '../src/policy/engine.js';
import { parseRulesText } from '../src/policy/rules-load.js';
import { loadParser } from '../src/sql/parse.js';
import { createTestDatabase, seedItemsAndSecrets, type TestDatabase } from './support/db.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';

const run = promisify(execFile);
let db: TestDatabase;
let px: TestProxy;

/** Debian's pgJDBC (libpostgresql-jdbc-java) and JDK (openjdk-17-jdk-headless), installed by .ci/run. */
const JDBC_JAR = process.env.PGWARDEN_JDBC_JAR ?? '/usr/share/java/postgresql.jar';

beforeAll(async () => {
  db = await createTestDatabase('jdbc');
  await seedItemsAndSecrets(db, 20);
  await loadParser();
  const rules = parseRulesText(
    'jdbc.yaml',
    'version: 1\ntenant: { claim: tenant }\ntables:\n  public.items: { scope: global, access: [select] }\n',
  );
  const judge = createPolicyJudge(rules, await loadCatalog(db.url, 'public'), { searchPath: 'public' });
  px = await startTestProxy(db, { judge });
});
afterAll(async () => {
  await px?.close();
  await db?.drop();
});

describe('JDBC (pgJDBC through pgwarden)', () => {
  it('connects with a token, runs plain and server-prepared statements, and sees denials as SQLStates', async () => {
    const url = `jdbc:postgresql://127.0.0.1:${px.port}/${db.name}?sslmode=disable`;
    const { stdout } = await run(
      'java',
      [
        '-cp',
        JDBC_JAR,
        join(import.meta.dirname, 'clients/JdbcProbe.java'),
        url,
        'java-agent',
        await px.token(),
      ],
      { timeout: 60_000 },
    );
    expect(stdout.trim().split('\n')).toEqual([
      'count 20',
      // pgJDBC set its own name after connecting; the server still names the agent.
      'application_name pgwarden/support-bot',
      // Eight executions: the last three through pgJDBC's named server-side statement.
      'prepared item 1,item 2,item 3,item 4,item 5,item 6,item 7,item 8',
      'denied 42501',
      // A denial inside a transaction leaves it failed, as PostgreSQL would.
      'in transaction 42501',
      'after denial 25P02',
      'after rollback 20',
    ]);
    // pgJDBC names its server-side statements S_1, S_2, ...: those executions were judged at Parse.
    const named = px.sink.records.filter(
      (r) => r.protocol?.mode === 'extended' && /^S_\d+$/.test(r.protocol.statementName ?? ''),
    );
    expect(named.map((r) => r.sql)).toContain('SELECT name FROM items WHERE id = $1');
    // Its SET application_name after connecting was answered, and the server kept pgwarden's name.
    expect(px.sink.records.find((r) => r.sql?.startsWith('SET application_name'))).toMatchObject({
      verdict: 'rewrite',
      rewrittenSql: 'SET application_name TO DEFAULT',
    });
  }, 90_000);
});
