/** The decision log's public surface: what main.ts and the CLI use. */
export {
  startDecisionLog,
  type DecisionLog,
  type DecisionLogOptions,
  type DecisionLogStats,
} from './decision-log.js';
export { auditConfigSchema, type AuditConfig, type AuditConfigInput } from './config.js';
export type { DecisionRecord, DecisionSink, Outcome, RecordKind } from './record.js';
export { AuditReader, type DecisionView, type Page } from './store-reader.js';
export { verifyAll, verifyInstance, type InstanceReport, type Problem } from './verify.js';
export { storeUrl, upstreamUrlFromConfig } from './store-url.js';
export { resolveHmacKey } from './hmac-key.js';
export { startApi } from '../api/server.js';
export { buildApiApp } from '../api/app.js';
