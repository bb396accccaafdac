import type { Logger } from 'pino';
import type { DecisionRecord, DecisionSink, Outcome } from './record.js';

/**
 * Decision records as NDJSON lines through pino, and nothing else: the sink used when the durable
 * decision log is off (and by the proxy's own tests). One line per decision and per outcome.
 */
export function createLogOnlySink(logger: Logger): DecisionSink {
  return {
    decide(record: DecisionRecord): void {
      logger.info({ decision: record }, 'decision');
    },
    complete(outcome: Outcome): void {
      logger.info({ outcome }, 'outcome');
    },
    close: async () => {},
  };
}

/** Keeps records in memory, for tests that assert what was recorded. */
export function createMemorySink(): DecisionSink & { records: DecisionRecord[]; outcomes: Outcome[] } {
  const records: DecisionRecord[] = [];
  const outcomes: Outcome[] = [];
  return {
    records,
    outcomes,
    decide: (r) => void records.push(r),
    complete: (o) => void outcomes.push(o),
    close: async () => {},
  };
}
