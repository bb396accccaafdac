import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../src/policy/catalog.js';
import { createPolicyJudge } from '../src/policy/engine.js';
import { loadRules } from '../src/policy/rules-load.js';
import { loadParser } from '../src/sql/parse.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';

/**
 * The reference MCP Postgres server (@modelcontextprotocol/server-postgres), unmodified, pointed at
 * pgwarden with a token for acme, and driven by the MCP SDK's client as an agent host would: list
 * the tables, read a table's schema, run the `query` tool (it wraps each query in BEGIN
 * TRANSACTION READ ONLY ... ROLLBACK).
 */
const require = createRequire(import.meta.url);
const SERVER = require.resolve('@modelcontextprotocol/server-postgres/dist/index.js');

let db: TestDatabase;
let proxy: TestProxy;
let mcp: Client;

interface ToolText {
  content: { type: string; text: string }[];
}

async function query(sql: string): Promise<unknown[]> {
  const r = (await mcp.callTool({ name: 'query', arguments: { sql } })) as ToolText;
  return JSON.parse(r.content[0]?.text ?? 'null') as unknown[];
}

beforeAll(async () => {
  await loadParser();
  db = await createTestDatabase('mcp');
  await db.sql(readFileSync('src/demo/seed.sql', 'utf8'));
  const judge = createPolicyJudge(await loadRules(['rules']), await loadCatalog(db.url, 'public'), {
    searchPath: 'public',
  });
  proxy = await startTestProxy(db, { judge });
  const url = await proxy.url({ tenant: 'acme', human: 'alice@acme.test', agent: 'claude-desktop' });
  mcp = new Client({ name: 'pgwarden-test', version: '1.0.0' }, { capabilities: {} });
  await mcp.connect(
    new StdioClientTransport({ command: process.execPath, args: [SERVER, `${url}?sslmode=disable`] }),
  );
}, 60_000);
afterAll(async () => {
  await mcp?.close();
  await proxy?.close();
  await db?.drop();
});

describe('the reference MCP Postgres server through pgwarden', () => {
  it('lists only the tables the rules name, and a table schema without its denied column', async () => {
    const { resources } = await mcp.listResources();
    const tables = resources.map((r) => r.name).sort();
    expect(tables).toEqual(
      expect.arrayContaining(['"customers" database schema', '"orders" database schema']),
    );
    expect(tables.join()).not.toContain('internal_notes');
    const customers = resources.find((r) => r.name === '"customers" database schema');
    const read = await mcp.readResource({ uri: customers!.uri });
    const columns = (
      JSON.parse((read.contents[0] as { text: string }).text) as { column_name: string }[]
    ).map((c) => c.column_name);
    expect(columns).toEqual(expect.arrayContaining(['id', 'name', 'email']));
    expect(columns).not.toContain('ssn');
  });

  it("answers the query tool with the caller's tenant only, even when asked for another's rows", async () => {
    const [mine] = await db.sql<{ n: number }>("SELECT count(*)::int AS n FROM orders WHERE org_id = 'acme'");
    expect(await query('SELECT count(*)::int AS n FROM orders')).toEqual([{ n: mine!.n }]);
    // The attack an injected prompt would try: name the other tenant outright. Refused, with a
    // message that tells the agent what to do instead.
    await expect(query("SELECT count(*)::int AS n FROM orders WHERE org_id = 'globex'")).rejects.toThrow(
      /you act for tenant 'acme'/,
    );
    const emails = (await query('SELECT email FROM customers ORDER BY id LIMIT 3')) as { email: string }[];
    expect(emails.length).toBeGreaterThan(0);
    for (const e of emails) expect(e.email).toMatch(/^.\*\*\*@/);
  });

  it('turns a denied query into a tool error the agent can read, and keeps serving', async () => {
    await expect(query('SELECT ssn FROM customers')).rejects.toThrow(/ssn/);
    await expect(query('SELECT * FROM internal_notes')).rejects.toThrow(/internal_notes/);
    expect(await query('SELECT 1 AS ok')).toEqual([{ ok: 1 }]);
    const records = proxy.sink.records.filter((r) => r.agent === 'claude-desktop' && r.kind === 'statement');
    expect(records.map((r) => r.sql)).toEqual(
      expect.arrayContaining(['BEGIN TRANSACTION READ ONLY', 'SELECT ssn FROM customers', 'ROLLBACK']),
    );
    expect(records.find((r) => r.sql === 'SELECT ssn FROM customers')).toMatchObject({
      verdict: 'deny',
      human: 'alice@acme.test',
      tenant: 'acme',
    });
  });
});
