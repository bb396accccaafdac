import { parentPort } from 'node:worker_threads';
import { loadParser, parserLost } from '../sql/parse.js';
import { createPolicyJudge } from './engine.js';
import type { FromJudgeThread, ToJudgeThread } from './judge-thread-protocol.js';

/**
 * The judge thread: statements the proxy's decision caches do not hold are judged here, so that
 * judging (a multi-row INSERT of thousands of rows takes a second) never holds the proxy's event
 * loop and every other session. Messages are handled in order, so a statement sent after a policy
 * is judged with that policy. Each answer carries what the judgement added to the caches, for the
 * proxy to remember.
 */
const port = parentPort;
if (!port) throw new Error('judge-thread runs only as a worker thread');
await loadParser();
let judge: ReturnType<typeof createPolicyJudge> | undefined;
let generation = 0;
port.on('message', (m: ToJudgeThread) => {
  if (m.type === 'policy') {
    const first = judge === undefined;
    judge = createPolicyJudge(m.inputs.rules, m.inputs.catalog, {
      searchPath: m.inputs.searchPath,
      rulesVersion: m.inputs.rulesVersion,
      ...(m.inputs.maxNestingEstimate === undefined
        ? {}
        : { maxNestingEstimate: m.inputs.maxNestingEstimate }),
      ...(m.inputs.statementTimeoutMs === undefined
        ? {}
        : { statementTimeoutMs: m.inputs.statementTimeoutMs }),
    });
    generation = m.generation;
    // Judging time is counted from here: starting a thread is not the statement's fault.
    if (first) port.postMessage({ type: 'ready' } satisfies FromJudgeThread);
    return;
  }
  if (!judge) throw new Error('judge thread asked to judge before it was given a policy');
  const { judgement, lesson } = judge.judgeAndTeach(m.sql, m.ctx);
  // A thread whose parser is lost asks to be replaced (parse.ts, ParserLostError).
  const reply: FromJudgeThread = {
    type: 'judged',
    id: m.id,
    judgement,
    lesson,
    generation,
    ...(parserLost() ? { retire: true } : {}),
  };
  port.postMessage(reply);
});
