import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import { FrontendDecoder, type FrontendMessage } from '../protocol/frontend-decoder.js';
import type { Change } from './mirror.js';
import { pending, type Pending } from './pending.js';
import { Segments } from './segments.js';

function message(bytes: Buffer): FrontendMessage {
  const d = new FrontendDecoder(1 << 20);
  d.startTypedPhase(1 << 20);
  d.push(bytes);
  return d.next()!;
}

const bind = (portal = ''): FrontendMessage => message(serialize.bind({ portal }));
const execute = (portal = ''): FrontendMessage => message(serialize.execute({ portal }));
const parse = (): FrontendMessage => message(serialize.parse({ text: 'SELECT 1' }));

/** A request that changed the mirror (its changes are not looked into here). */
function changing(kind: Pending['kind']): Pending {
  const p = pending(kind);
  p.changes = [{} as Change];
  return p;
}

describe('segments of a pipeline', () => {
  it('hold nothing back after segments that changed only the unnamed portal, but an Execute of it they did not bind', () => {
    const s = new Segments();
    // Bind ''; Execute; Sync: a driver's query, forwarded and not yet answered.
    s.forwarded(changing('bind'), true, true);
    s.forwarded(pending('execute'), true, false);
    s.forwarded(pending('sync'), true, false);
    expect(s.mustWait(parse())).toBe(false);
    expect(s.mustWait(bind())).toBe(false);
    // The next segment's Execute of the unnamed portal its own Bind made: no wait.
    s.forwarded(changing('bind'), true, true);
    expect(s.mustWait(execute())).toBe(false);
    s.forwarded(pending('execute'), true, false);
    s.forwarded(pending('sync'), true, false);
    // The attack: an Execute of the unnamed portal with no Bind of its own reads the earlier one,
    // which the server may not hold if that Bind failed: it waits for the answers.
    expect(s.mustWait(execute())).toBe(true);
    s.answer();
    expect(s.mustWait(execute())).toBe(true);
    s.answer();
    expect(s.mustWait(execute())).toBe(false);
  });

  it('hold every reading message back after a segment that changed another name', () => {
    const s = new Segments();
    s.forwarded(changing('bind'), false, false); // Bind of the named portal p
    s.forwarded(pending('sync'), true, false);
    for (const m of [parse(), bind(), execute('p'), execute()]) expect(s.mustWait(m)).toBe(true);
    s.answer();
    for (const m of [parse(), bind(), execute('p'), execute()]) expect(s.mustWait(m)).toBe(false);
  });
});
