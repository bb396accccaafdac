import { loadRules, RulesError } from '../policy/rules-load.js';
import type { Rules } from '../policy/rules-schema.js';

/** Loads rules for a command; on failure says why on stderr and returns undefined (exit 1). */
export async function loadRulesOrReport(
  paths: readonly string[] | undefined,
  stderr: (s: string) => void,
): Promise<Rules | undefined> {
  try {
    return await loadRules(paths ?? ['rules']);
  } catch (err) {
    stderr(err instanceof RulesError ? err.message : (err as Error).message);
    return undefined;
  }
}
