import { describe, expect, it } from 'vitest';
import { sameTree } from './ast.js';

describe('comparing trees', () => {
  const guard = { A_Expr: { kind: 'AEXPR_OP', name: [{ String: { sval: '=' } }], location: 7 } };

  it('ignores parser locations and key order', () => {
    expect(
      sameTree(guard, { A_Expr: { name: [{ String: { sval: '=' } }], kind: 'AEXPR_OP', location: 99 } }),
    ).toBe(true);
    expect(sameTree({ A_Const: { boolval: {} } }, { A_Const: { boolval: {}, location: 3 } })).toBe(true);
  });

  it('tells apart any other difference', () => {
    const other = { A_Expr: { kind: 'AEXPR_OP', name: [{ String: { sval: '<>' } }] } };
    expect(sameTree(guard, other)).toBe(false);
    expect(sameTree({ A_Const: { boolval: {} } }, { A_Const: { boolval: { boolval: true } } })).toBe(false);
    // A key more on either side, an element more, a list against an object, a number against text.
    expect(sameTree({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(sameTree({ a: 1, b: 2 }, { a: 1 })).toBe(false);
    expect(sameTree([1, 2], [1, 2, 3])).toBe(false);
    expect(sameTree({ 0: 1 }, [1])).toBe(false);
    expect(sameTree({ ival: 1 }, { ival: '1' })).toBe(false);
  });

  it('treats a key whose value is undefined as absent, as the JSON of a tree does', () => {
    expect(sameTree({ a: 1, b: undefined }, { a: 1 })).toBe(true);
  });
});
