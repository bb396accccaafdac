import type { Rules } from './rules-schema.js';

/**
 * Columns a role shows that the base rule of its table denies. A role's `columns` replaces the
 * base rule's allow, deny and mask together (rules.md, Roles), so a role written to add one mask
 * shows every column the base rule denied (red team, round 44). That may be meant (a role that may
 * see the SSN), so it is said, not refused: by `pgwarden rules check`, and in the log whenever
 * such rules come into force. A mask a role drops is not said: showing a role the real value is
 * what such overrides are usually for (the demo's support-lead and e-mail addresses).
 */
export function roleWarnings(rules: Rules): string[] {
  const warnings: string[] = [];
  for (const [role, r] of Object.entries(rules.roles ?? {}))
    for (const [q, o] of Object.entries(r.tables)) {
      const base = rules.tables[q]?.columns;
      const cols = o.columns;
      if (!cols || !base) continue;
      const shown = (c: string): boolean => !cols.deny.includes(c) && (cols.allow?.includes(c) ?? true);
      const where = `roles.${role}.tables.${q}.columns`;
      for (const c of base.deny)
        if (shown(c))
          warnings.push(
            `${where} shows "${c}", which tables.${q} denies (a role's columns replace the base rule's): deny it again there unless the role may see it`,
          );
    }
  return warnings;
}
