import { entryLine, isWarning, outcomeBody, recordBody } from './canonical.js';
import { Chain, GENESIS } from './chain.js';
import type { AuditConfig } from './config.js';
import type { DecisionLog } from './decision-log.js';
import { openNdjson, type NdjsonOutput } from './ndjson.js';

/**
 * `audit.durable: false`: NDJSON lines only, never holding a statement back. The lines still carry
 * a chain, so a SIEM can check them on its own. With NDJSON off too, nothing is serialised at all:
 * the true "log off" that the durable log's cost is measured against.
 */
export function startNdjsonOnlyLog(
  config: AuditConfig,
  instanceId: string,
  hmacKey: string | undefined,
): DecisionLog {
  const off = config.ndjson === 'off';
  const chain = new Chain({ seq: 0, hash: GENESIS }, hmacKey);
  let out: NdjsonOutput | null = null;
  let decided = 0;
  let completed = 0;
  const write = (type: 'decision' | 'outcome', time: string, warn: boolean, body: string): void => {
    const link = chain.peek(body);
    chain.commit(link);
    (out ??= openNdjson(config.ndjson)).write(entryLine(type, instanceId, time, warn, link, body));
  };
  return {
    off,
    reader: null,
    decide(r) {
      decided++;
      if (!off) write('decision', r.time, isWarning(r), recordBody(r, config.redactParameters));
    },
    complete(o) {
      completed++;
      if (!off) write('outcome', o.time, false, outcomeBody(o));
    },
    stats: () => ({
      instanceId,
      durable: false,
      decided,
      completed,
      refused: 0,
      unspooled: 0,
      chainSeq: chain.head().seq,
      spool: null,
      shipper: null,
    }),
    flushToStore: async () => true,
    reopenNdjson: () => out?.reopen(),
    deliveredHead: async () => null,
    close: async () => out?.close(),
  };
}
