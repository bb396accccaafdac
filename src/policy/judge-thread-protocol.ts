import type { Catalog } from './catalog.js';
import type { Rules } from './rules-schema.js';
import type { Lesson } from './engine.js';
import type { JudgeContext, Judgement } from './verdict.js';

/** What the judge thread needs to build the same judge as the proxy's thread. */
export interface PolicyInputs {
  readonly rules: Rules;
  readonly catalog: Catalog;
  readonly searchPath: string;
  /** PolicyJudgeOptions.rulesVersion. */
  readonly rulesVersion?: number;
  /** PolicyJudgeOptions.maxNestingEstimate. */
  readonly maxNestingEstimate?: number;
  /** PolicyJudgeOptions.statementTimeoutMs. */
  readonly statementTimeoutMs?: number;
}

export type ToJudgeThread =
  | { readonly type: 'policy'; readonly inputs: PolicyInputs; readonly generation: number }
  | { readonly type: 'judge'; readonly id: number; readonly sql: string; readonly ctx: JudgeContext };

export type FromJudgeThread = { readonly type: 'ready' } | Judged;

interface Judged {
  readonly type: 'judged';
  readonly id: number;
  readonly judgement: Judgement;
  readonly lesson: Lesson;
  /** The policy it was judged with. */
  readonly generation: number;
  /** The thread's parser is lost: it judges nothing more and is to be replaced. */
  readonly retire?: true;
}
