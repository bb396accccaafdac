import type { JudgeContext } from '../../src/policy/verdict.js';
import { freshSessionState } from '../../src/policy/verdict.js';

/** A simple-protocol judging context for one caller, with a fresh session (no prepared names). */
export function judgeContext(
  tenant: string,
  who: { human?: string; agent?: string; roles?: string[] } = {},
): JudgeContext {
  return {
    identity: {
      human: who.human ?? `h@${tenant}.test`,
      agent: who.agent ?? 'test-agent',
      tenant,
      roles: who.roles ?? [],
      tokenId: undefined,
      expiresAt: undefined,
    },
    protocol: 'simple',
    session: freshSessionState(),
  };
}
