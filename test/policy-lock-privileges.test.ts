import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unlockableParents } from '../src/policy/lock-privileges.js';
import { loadRules } from '../src/policy/rules-load.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';

/**
 * The parent-key guards lock the parent row (FOR KEY SHARE), which PostgreSQL allows only with
 * UPDATE on some column of the parent: found by the review, a least-privilege user could no
 * longer insert into order_items at all, with nothing saying why. pgwarden names such tables at start.
 */
let db: TestDatabase;
const role = `pgw_limited_${process.pid}`;

beforeAll(async () => {
  db = await createTestDatabase('lock_privileges');
  await db.sql(readFileSync('src/demo/seed.sql', 'utf8'));
  await db.sql(`CREATE ROLE ${role} LOGIN PASSWORD 'limited'`);
  await db.sql(`GRANT SELECT ON public.orders TO ${role}`);
  await db.sql(`GRANT SELECT, INSERT ON public.order_items TO ${role}`);
});
afterAll(async () => {
  await db.sql(`DROP OWNED BY ${role}`);
  await db.sql(`DROP ROLE ${role}`);
  await db.drop();
});

describe('parents pgwarden cannot lock', () => {
  it('are named for a user without UPDATE on the parent, and none for one with it', async () => {
    const rules = await loadRules(['rules']);
    const limited = new URL(db.url);
    limited.username = role;
    limited.password = 'limited';
    expect(await unlockableParents(limited.toString(), rules)).toEqual(['public.orders']);
    await db.sql(`GRANT UPDATE (status) ON public.orders TO ${role}`);
    expect(await unlockableParents(limited.toString(), rules)).toEqual([]);
    expect(await unlockableParents(db.url, rules)).toEqual([]);
    await db.sql(`REVOKE UPDATE (status) ON public.orders FROM ${role}`);
    // A role's override may grant the insert the base rule does not (found by the review).
    const items = rules.tables['public.order_items']!;
    const byRole = {
      ...rules,
      tables: { ...rules.tables, 'public.order_items': { ...items, access: ['select' as const] } },
      roles: { writer: { tables: { 'public.order_items': { access: ['insert' as const] } }, functions: [] } },
    };
    expect(await unlockableParents(limited.toString(), byRole)).toEqual(['public.orders']);
    expect(await unlockableParents(limited.toString(), { ...byRole, roles: {} })).toEqual([]);
  });
});
