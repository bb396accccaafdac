import { createHash } from 'node:crypto';
import { watch as watchPath } from 'node:fs';
import type { Catalog } from './catalog.js';
import { checkRulesAgainstCatalog } from './catalog.js';
import { createPolicyJudge, type PolicyJudge } from './engine.js';
import { JudgeThreads, type JudgeThreadLogger } from './judge-thread-client.js';
import { loadRules, RulesError } from './rules-load.js';
import type { Rules } from './rules-schema.js';
import type { Judge } from './verdict.js';

export interface ReloadLogger {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

/**
 * A reload's outcome. `superseded`: a newer reload (a file change after a SIGHUP, say) started
 * meanwhile and decides what is in force; nothing was refused.
 */
export interface ReloadResult {
  readonly ok: boolean;
  readonly error?: string;
  readonly superseded?: true;
}

export interface ReloadableJudge {
  /** Always judges with the rules in force; a reload swaps them in one assignment. */
  readonly judge: Judge;
  reload(): Promise<ReloadResult>;
  /** Reloads when a rules file changes (debounced); returns a function that stops watching. */
  watch(): () => void;
  /** Stops the judge thread, if there is one. */
  close(): Promise<void>;
}

/**
 * The rules name the token claim that carries the tenant (tenant.claim); the identity takes the
 * tenant from auth.claims.tenant. Two different names would mean the rules describe a claim the
 * proxy never reads: refused at start and on reload.
 */
export function tenantClaimMismatch(rules: Rules, tokenTenantClaim: string | undefined): string | undefined {
  if (tokenTenantClaim === undefined || rules.tenant.claim === tokenTenantClaim) return undefined;
  return (
    `the rules' tenant.claim is "${rules.tenant.claim}" but the config's auth.claims.tenant is ` +
    `"${tokenTenantClaim}"; they must name the same token claim`
  );
}

/** A digest of the rules and catalog a judge is built from. */
function inputsKey(b: { rules: Rules; catalog: Catalog }): string {
  return createHash('sha256')
    .update(JSON.stringify([b.rules, b.catalog]))
    .digest('hex');
}

/** Loads rules and catalog, checks one against the other and builds a judge; throws RulesError. */
export async function buildJudge(
  rulesPaths: readonly string[],
  catalog: () => Promise<Catalog>,
  searchPath: string,
  tokenTenantClaim?: string,
  rulesVersion = 0,
  statementTimeoutMs?: number,
): Promise<{ judge: PolicyJudge; rules: Rules; catalog: Catalog }> {
  const rules = await loadRules(rulesPaths);
  const mismatch = tenantClaimMismatch(rules, tokenTenantClaim);
  if (mismatch !== undefined) throw new RulesError([mismatch]);
  const cat = await catalog();
  const problems = checkRulesAgainstCatalog(rules, cat);
  if (problems.length > 0) throw new RulesError(problems);
  const judge = createPolicyJudge(rules, cat, {
    searchPath,
    rulesVersion,
    ...(statementTimeoutMs === undefined ? {} : { statementTimeoutMs }),
  });
  return { judge, rules, catalog: cat };
}

/**
 * The judge the proxy holds for its whole life. The first load must succeed (pgwarden does not
 * start without valid rules); later reloads that fail leave the previous rules in force.
 */
export async function createReloadableJudge(opts: {
  rulesPaths: string[];
  loadCatalog: () => Promise<Catalog>;
  searchPath: string;
  /** session.statementTimeoutMs: agents may set a shorter one (PolicyJudgeOptions). */
  statementTimeoutMs?: number;
  /** auth.claims.tenant: the rules' tenant.claim must be the same. */
  tenantClaim?: string;
  logger?: ReloadLogger & JudgeThreadLogger;
  /** Statements not in the decision caches may be judged on a thread of their own (Judge.judgeOffThread). */
  offThread?: boolean;
  /** How long the judge thread may take over one statement (limits.judgeTimeoutMs). */
  judgeTimeoutMs?: number;
  /** Judge threads (limits.judgeThreadCount). */
  judgeThreads?: number;
  /**
   * Told of the rules each time a different set is put in force, the first included (start.ts
   * checks that pgwarden's database user can lock the parents they name). It must not throw.
   */
  onRulesInForce?: (rules: Rules) => void;
}): Promise<ReloadableJudge> {
  const build = (rulesVersion: number): ReturnType<typeof buildJudge> =>
    buildJudge(
      opts.rulesPaths,
      opts.loadCatalog,
      opts.searchPath,
      opts.tenantClaim,
      rulesVersion,
      opts.statementTimeoutMs,
    );
  const thread = opts.offThread
    ? new JudgeThreads(opts.logger, {
        timeoutMs: opts.judgeTimeoutMs ?? 3000,
        threads: opts.judgeThreads ?? 2,
      })
    : undefined;
  /** Counts the rules put in force: sessions compare it with their prepared statements'. */
  let version = 0;
  const first = await build(version);
  let current = first.judge;
  /** What the rules in force were built from: a reload of the same is no change (see reload). */
  let currentInputs = inputsKey(first);
  opts.onRulesInForce?.(first.rules);
  thread?.setPolicy({
    rules: first.rules,
    catalog: first.catalog,
    searchPath: opts.searchPath,
    rulesVersion: version,
    ...(opts.statementTimeoutMs === undefined ? {} : { statementTimeoutMs: opts.statementTimeoutMs }),
  });
  let generation = 0;
  const judge: Judge = {
    get rulesVersion() {
      return version;
    },
    judge: (sql, ctx) => current.judge(sql, ctx),
    lookup: (sql, ctx, exactOnly) => current.lookup(sql, ctx, exactOnly),
    namesRelation: (qname) => current.namesRelation(qname),
    ...(thread
      ? {
          judgeOffThread: async (sql, ctx, stillWanted) => {
            const { judgement, lesson } = await thread.judge(sql, ctx, stillWanted);
            // The thread's policy changes with `current` (reload), so a lesson it passes on is one
            // of the rules in force.
            if (lesson) current.learn(lesson);
            return judgement;
          },
        }
      : {}),
  };

  const reload = async (): Promise<ReloadResult> => {
    const mine = ++generation;
    try {
      // Only the newest reload is put in force, so the version it is built as is the next one.
      const next = await build(version + 1);
      // A slower, older reload must not overwrite a newer one.
      if (mine !== generation) return { ok: false, superseded: true, error: 'superseded by a newer reload' };
      // The same rules and catalog (a SIGHUP, an editor's swap file in the rules directory): a
      // new version would refuse every session's PREPAREd statements and cursors for nothing.
      const key = inputsKey(next);
      if (key === currentInputs) {
        opts.logger?.info({ event: 'rules_unchanged' }, 'rules reloaded: nothing changed');
        return { ok: true };
      }
      currentInputs = key;
      current = next.judge;
      version++;
      thread?.setPolicy({
        rules: next.rules,
        catalog: next.catalog,
        searchPath: opts.searchPath,
        rulesVersion: version,
        ...(opts.statementTimeoutMs === undefined ? {} : { statementTimeoutMs: opts.statementTimeoutMs }),
      });
      opts.logger?.info(
        { event: 'rules_loaded', tables: Object.keys(next.rules.tables).length },
        'rules loaded',
      );
      opts.onRulesInForce?.(next.rules);
      return { ok: true };
    } catch (err) {
      const error =
        err instanceof RulesError ? err.message : `could not load rules: ${(err as Error).message}`;
      opts.logger?.warn(
        { event: 'rules_refused', error },
        'new rules refused; the previous rules stay in force',
      );
      return { ok: false, error };
    }
  };

  const watch = (): (() => void) => {
    let timer: NodeJS.Timeout | undefined;
    const watchers = opts.rulesPaths.map((p) =>
      watchPath(p, () => {
        clearTimeout(timer);
        timer = setTimeout(() => void reload(), 200);
      }),
    );
    return () => {
      clearTimeout(timer);
      for (const w of watchers) w.close();
    };
  };

  return { judge, reload, watch, close: async () => thread?.close() };
}
