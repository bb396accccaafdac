import { parentPort } from 'node:worker_threads';
import { loadParser } from '../sql/parse.js';
import { createPolicyJudge } from './engine.js';
import type { FromJudgeThread, ToJudgeThread } from './judge-thread-protocol.js';
import type { Judge } from './verdict.js';

/**
 * The judge thread: long statements are judged here so that judging one (a multi-row INSERT of
 * thousands of rows takes a second) never holds the proxy's event loop and every other session.
 * Messages are handled in order, so a statement sent after a policy is judged with that policy.
 */
const port = parentPort;
if (!port) throw new Error('judge-thread runs only as a worker thread');
await loadParser();
let judge: Judge | undefined;
port.on('message', (m: ToJudgeThread) => {
  if (m.type === 'policy') {
    judge = createPolicyJudge(m.inputs.rules, m.inputs.catalog, { searchPath: m.inputs.searchPath });
    return;
  }
  if (!judge) throw new Error('judge thread asked to judge before it was given a policy');
  const reply: FromJudgeThread = { type: 'judged', id: m.id, judgement: judge.judge(m.sql, m.ctx) };
  port.postMessage(reply);
});
