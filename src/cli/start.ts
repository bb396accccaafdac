import type { Logger } from 'pino';
import { hostname } from 'node:os';
import { startApi } from '../api/server.js';
import { resolveHmacKey } from '../audit/hmac-key.js';
import { startDecisionLog } from '../audit/index.js';
import type { Config } from '../config/schema.js';
import { loadCatalog } from '../policy/catalog.js';
import { createReloadableJudge } from '../policy/reloadable.js';
import { loadParser } from '../sql/parse.js';
import { startPgwarden, type RunningPgwarden } from '../server.js';
import { configFromArgs, untilStopSignal } from './daemon.js';
import type { CliIo } from './io.js';
import { unlockableParents } from '../policy/lock-privileges.js';
import { roleWarnings } from '../policy/role-warnings.js';
import type { Rules } from '../policy/rules-schema.js';

export interface Started {
  readonly proxy: RunningPgwarden;
  /** The responders' API and web page, when audit.api.enabled. */
  readonly apiUrl: string | undefined;
  stop(): Promise<void>;
}

function upstreamUrl(config: Config): string {
  const u = config.upstream;
  const auth =
    u.password === undefined
      ? encodeURIComponent(u.user)
      : `${encodeURIComponent(u.user)}:${encodeURIComponent(u.password)}`;
  return `postgres://${auth}@${u.host}:${u.port}/${encodeURIComponent(u.database)}`;
}

/** Stable across restarts so the decision log's hash chain continues where it stopped. */
function instanceIdOf(config: Config): string {
  return config.instanceId ?? `${hostname()}:${config.listen.port}`;
}

/** How long /verify waits for this instance's spooled records to reach the store. */
const VERIFY_DRAIN_MS = 5000;

/**
 * Starts pgwarden from a validated config: parser, rules checked against the live catalog,
 * decision sink, listener; SIGHUP reloads rules and reopens the NDJSON file, SIGTERM/SIGINT shut
 * down cleanly.
 */
export async function startFromConfig(config: Config, logger: Logger): Promise<Started> {
  await loadParser();
  const url = upstreamUrl(config);
  // Rules (at start and after each reload) may show a role columns the base rules deny (said, as
  // it may be meant), or scope tables through parents that pgwarden's database user cannot lock:
  // every INSERT into those would fail in the server, so it is said.
  const sayOfRules = (rules: Rules): void => {
    for (const warning of roleWarnings(rules))
      logger.warn({ event: 'role_shows_denied_column', warning }, warning);
    unlockableParents(url, rules).then(
      (tables) => {
        for (const table of tables)
          logger.error(
            { event: 'parent_lock_privilege', table },
            `pgwarden's database user cannot lock rows of ${table} (it needs UPDATE on some column): every INSERT and upsert into a table scoped through it will fail; grant it (docs/rules.md)`,
          );
      },
      (err: Error) =>
        logger.warn(
          { event: 'parent_lock_privilege_unchecked', err: err.message },
          'could not check lock privileges',
        ),
    );
  };
  const policy = await createReloadableJudge({
    rulesPaths: config.rules.paths,
    loadCatalog: () => loadCatalog(url, config.session.searchPath),
    searchPath: config.session.searchPath,
    statementTimeoutMs: config.session.statementTimeoutMs,
    tenantClaim: config.auth.claims.tenant,
    logger,
    offThread: config.limits.judgeThread,
    judgeTimeoutMs: config.limits.judgeTimeoutMs,
    judgeThreads: config.limits.judgeThreadCount,
    onRulesInForce: sayOfRules,
  });
  const stopWatching = policy.watch();
  const instanceId = instanceIdOf(config);
  const log = await startDecisionLog(config.audit, { instanceId, upstreamUrl: url, logger });
  const api =
    config.audit.api.enabled && log.reader
      ? await startApi(config.audit, {
          reader: log.reader,
          logger,
          hmacKey: resolveHmacKey(config.audit),
          deliveredHead: () => log.deliveredHead(VERIFY_DRAIN_MS),
        })
      : undefined;
  const proxy = await startPgwarden({ config, judge: policy.judge, sink: log, logger, instanceId });
  const onHup = (): void => {
    // As most daemons do: SIGHUP after logrotate has moved the NDJSON file away.
    log.reopenNdjson();
    void policy.reload().then((r) => {
      if (r.ok) logger.info({ event: 'rules_reloaded' }, 'rules reloaded');
      else if (r.superseded)
        logger.info({ event: 'rules_reload_superseded' }, 'a newer reload decides which rules are in force');
      else
        logger.error(
          { event: 'rules_reload_refused', error: r.error },
          'new rules refused; previous rules stay in force',
        );
    });
  };
  process.on('SIGHUP', onHup);
  return {
    proxy,
    apiUrl: api?.url,
    stop: async () => {
      process.off('SIGHUP', onHup);
      stopWatching();
      await proxy.close();
      await api?.close();
      await log.close();
      await policy.close();
    },
  };
}

/** `pgwarden start --config pgwarden.yaml` */
export async function startCommand(args: string[], io: CliIo): Promise<number> {
  const { config, logger } = configFromArgs(args);
  const started = await startFromConfig(config, logger);
  io.stderr(`pgwarden listening on ${started.proxy.host}:${started.proxy.port}`);
  await untilStopSignal();
  await started.stop();
  return 0;
}
