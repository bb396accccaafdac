import { startApi } from '../api/server.js';
import { resolveHmacKey } from '../audit/hmac-key.js';
import { AuditReader } from '../audit/store-reader.js';
import { redactUrl, storeUrl, upstreamUrlFromConfig } from '../audit/store-url.js';
import { configFromArgs, untilStopSignal } from './daemon.js';
import type { CliIo } from './io.js';

/**
 * `pgwarden api --config pgwarden.yaml`: the responders' API and web page in a process of their
 * own, reading the store the config names. A page of big decisions or an export costs this
 * process's memory and event loop, not the proxy's (with `audit.api.enabled` the API shares the
 * proxy's). Verify reports what the store holds; only a running instance knows what it delivered.
 */
export async function apiCommand(args: string[], io: CliIo): Promise<number> {
  const { config, logger } = configFromArgs(args);
  const url = storeUrl(config.audit, upstreamUrlFromConfig(config));
  const reader = new AuditReader(url);
  const api = await startApi(config.audit, { reader, logger, hmacKey: resolveHmacKey(config.audit) });
  io.stderr(`pgwarden api listening on ${api.url} (store ${redactUrl(url)})`);
  await untilStopSignal();
  await api.close();
  await reader.close();
  return 0;
}
