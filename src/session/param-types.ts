import type { ParamCheck, Verdict } from '../policy/verdict.js';

/**
 * Parameter types a client declares in Parse. The server reads each Bind value with the declared
 * type's input function, so the type decides what the value means, out of the policy's sight.
 */

/**
 * For each type a Bind-time parameter check reads, the declared parameter types whose input
 * function reads a value exactly as the check does (OID, name).
 */
const CHECKED_PARAM_TYPES: Record<ParamCheck['type'], readonly (readonly [number, string])[]> = {
  text: [
    [25, 'text'],
    [1043, 'varchar'],
  ],
  int4: [
    [21, 'int2'],
    [23, 'int4'],
    [20, 'int8'],
  ],
  int8: [
    [21, 'int2'],
    [23, 'int4'],
    [20, 'int8'],
  ],
  uuid: [[2950, 'uuid']],
};

/**
 * Built-in types whose input turns a name into an object (regclass: 'internal_notes' succeeds or
 * fails by whether the table exists), or that only internal code and the transaction machinery use
 * (the same types casts and functions may not use: src/policy/catalog.ts).
 */
const NAMING_OR_INTERNAL = new Set(
  Object.values({
    regproc: [24, 1008],
    regprocedure: [2202, 2207],
    regoper: [2203, 2208],
    regoperator: [2204, 2209],
    regclass: [2205, 2210],
    regtype: [2206, 2211],
    regnamespace: [4089, 4090],
    regrole: [4096, 4097],
    regcollation: [4191, 4192],
    aclitem: [1033, 1034],
    xid: [28, 1011],
    xid8: [5069, 271],
    txid_snapshot: [2970, 2949],
    pg_snapshot: [5038, 5039],
    cstring: [2275, 1263],
    internal: [2281],
  }).flat(),
);

/** OIDs below this were made by initdb; the database's own types (row types of its tables among them) start here. */
const FIRST_NORMAL_OBJECT_ID = 16384;

/**
 * Why the declared types cannot be accepted for this verdict, or undefined. Any parameter: no type
 * of the database's own (a table's row type would show the columns of a table the rules do not
 * list: `SELECT ($1).*`), none that names objects. A parameter with a tenant check: only a type
 * that reads its value exactly as the check does (tsvector turns 'acme' into "'acme'"), or none.
 */
export function declaredTypeProblem(
  v: Verdict,
  declared: readonly number[],
): { message: string; reason: string } | undefined {
  for (let i = 0; i < declared.length; i++) {
    const oid = declared[i] ?? 0;
    if (oid >= FIRST_NORMAL_OBJECT_ID || NAMING_OR_INTERNAL.has(oid))
      return {
        message: `parameter $${i + 1} is declared with type OID ${oid}, which agents may not use; declare a built-in data type (text, integer, numeric, timestamp, ...) or leave it unspecified (0)`,
        reason: 'param_type_not_allowed',
      };
  }
  if (v.kind === 'deny' || !v.paramChecks) return undefined;
  for (const check of v.paramChecks) {
    const oid = declared[check.index - 1] ?? 0;
    const accepted = CHECKED_PARAM_TYPES[check.type];
    if (oid === 0 || accepted.some(([o]) => o === oid)) continue;
    const names = accepted.map(([o, n]) => `${n} (${o})`).join(', ');
    return {
      message: `parameter $${check.index} sets your tenant and is checked as ${check.type}, but Parse declares its type as OID ${oid}; declare it as ${names}, or leave its type unspecified (0)`,
      reason: 'tenant_param_type',
    };
  }
  return undefined;
}
