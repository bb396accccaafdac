import type { DecisionRecord, DecisionSink, Outcome } from '../../src/audit/record.js';

/** Keeps records in memory, for proxy tests that assert what was recorded. */
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
