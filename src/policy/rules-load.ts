import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { rulesSchema, type Rules } from './rules-schema.js';

/** A rules problem a data owner can fix: every message names the file and the path in it. */
export class RulesError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid rules:\n  ${problems.join('\n  ')}`);
    this.name = 'RulesError';
  }
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(top level)';
  return path
    .map((p, i) => {
      const s = String(p);
      if (typeof p === 'number') return `[${s}]`;
      return /^[A-Za-z_$][\w$]*$/.test(s) ? (i === 0 ? s : `.${s}`) : `${i === 0 ? '' : '.'}"${s}"`;
    })
    .join('');
}

export function formatZodIssues(file: string, error: z.ZodError): string[] {
  return error.issues.map((i) => {
    // A bad record key (e.g. a table name without schema) carries the key's own issues inside.
    const inner = i.code === 'invalid_key' ? i.issues.map((x) => x.message).join('; ') : '';
    return `${file}: ${formatPath(i.path)}: ${inner || i.message}`;
  });
}

/** Lists rule files: each path is a YAML file or a directory of *.yaml / *.yml files (sorted). */
export async function listRuleFiles(paths: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const p of paths) {
    const s = await stat(p).catch(() => undefined);
    if (!s) throw new RulesError([`${p}: no such file or directory`]);
    if (s.isDirectory()) {
      const names = (await readdir(p)).filter((n) => /\.ya?ml$/.test(n)).sort();
      files.push(...names.map((n) => join(p, n)));
    } else files.push(p);
  }
  if (files.length === 0) throw new RulesError([`${paths.join(', ')}: no rule files (*.yaml) found`]);
  return files;
}

/** Parses and validates one file's text; throws RulesError naming the file. */
export function parseRulesText(file: string, text: string): Rules {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) throw new RulesError(doc.errors.map((e) => `${file}: ${e.message}`));
  const result = rulesSchema.safeParse(doc.toJS() ?? {});
  if (!result.success) throw new RulesError(formatZodIssues(file, result.error));
  return result.data;
}

/**
 * Merges files: tables, roles and lists are unions; a table or a role's table defined in two files
 * is an error (which file wins would otherwise depend on file names).
 */
export function mergeRules(parts: readonly { file: string; rules: Rules }[]): Rules {
  const problems: string[] = [];
  const tableFrom = new Map<string, string>();
  const merged: Rules = {
    version: 1,
    tenant: { claim: 'tenant' },
    tables: {},
    functions: [],
    introspection: [],
    roles: {},
  };
  let claimFrom: string | undefined;
  for (const { file, rules } of parts) {
    if (claimFrom !== undefined && rules.tenant.claim !== merged.tenant.claim)
      problems.push(
        `${file}: tenant.claim "${rules.tenant.claim}" differs from "${merged.tenant.claim}" in ${claimFrom}`,
      );
    claimFrom ??= file;
    merged.tenant = rules.tenant;
    for (const [name, t] of Object.entries(rules.tables)) {
      const prev = tableFrom.get(name);
      if (prev !== undefined) problems.push(`${file}: tables."${name}": already defined in ${prev}`);
      tableFrom.set(name, file);
      merged.tables[name] = t;
    }
    const fns = (merged.functions ??= []);
    fns.push(...(rules.functions ?? []).filter((f) => !fns.includes(f)));
    const intro = (merged.introspection ??= []);
    intro.push(...(rules.introspection ?? []).filter((r) => !intro.includes(r)));
    const roles = (merged.roles ??= {});
    for (const [role, r] of Object.entries(rules.roles ?? {})) {
      const into = (roles[role] ??= { tables: {}, functions: [] });
      for (const [name, o] of Object.entries(r.tables)) {
        if (into.tables[name])
          problems.push(`${file}: roles.${role}.tables."${name}": already defined in another file`);
        into.tables[name] = o;
      }
      into.functions.push(...r.functions);
    }
  }
  if (problems.length > 0) throw new RulesError(problems);
  return merged;
}

/** Reads, validates and merges rule files; throws RulesError with every problem found. */
export async function loadRules(paths: readonly string[]): Promise<Rules> {
  const files = await listRuleFiles(paths);
  const parts: { file: string; rules: Rules }[] = [];
  const problems: string[] = [];
  for (const file of files) {
    try {
      parts.push({ file, rules: parseRulesText(file, await readFile(file, 'utf8')) });
    } catch (err) {
      if (err instanceof RulesError) problems.push(...err.problems);
      else problems.push(`${file}: ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new RulesError(problems);
  return mergeRules(parts);
}
