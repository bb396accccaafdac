import { describe, expect, it } from 'vitest';
import { loadRules } from './rules-load.js';
import { roleWarnings } from './role-warnings.js';

describe('roleWarnings', () => {
  it("says which columns a role's override shows that the base rule denies or masks", async () => {
    const rules = await loadRules(['rules']);
    // The demo's support-lead shows email unmasked, as it is meant to, and keeps ssn denied.
    expect(roleWarnings(rules)).toEqual([]);
    // A role written to add a mask on name, forgetting the base rule's deny and mask (round 44).
    const careless = {
      ...rules,
      roles: {
        careless: {
          tables: { 'public.customers': { columns: { deny: [], mask: { name: "'x'" } } } },
          functions: [],
        },
      },
    };
    expect(roleWarnings(careless)).toEqual([
      'roles.careless.tables.public.customers.columns shows "ssn", which tables.public.customers denies (a role\'s columns replace the base rule\'s): deny it again there unless the role may see it',
    ]);
    // The look-alike: an override that repeats the base rule's deny and mask says nothing.
    const careful = {
      ...rules,
      roles: {
        careful: {
          tables: {
            'public.customers': {
              columns: {
                ...rules.tables['public.customers']!.columns!,
                mask: { ...rules.tables['public.customers']!.columns!.mask, name: "'x'" },
              },
            },
          },
          functions: [],
        },
      },
    };
    expect(roleWarnings(careful)).toEqual([]);
  });
});
