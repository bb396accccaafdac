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
 * The built-in data types a parameter may be declared with, by their OIDs (fixed in PostgreSQL's
 * pg_type.dat, the same in every version that has them), arrays included: base, range and
 * multirange types, 0 (unspecified), 705 (unknown, which leaves the type to the server as 0
 * does) and 2278 (void). Everything else is refused. Not here: the types whose input turns a name into an object
 * (regclass: 'internal_notes' succeeds or fails by whether the table exists; regtype, regproc,
 * regrole, regconfig, aclitem, ...), those only internal code and the transaction machinery use (xid, cid,
 * txid_snapshot, pg_snapshot, cstring, internal, pg_node_tree, statistics types), every composite
 * type, and the database's own types. A composite type below 16384 is the row type of a system
 * catalog or view; pg_sequences' has a regtype field and pg_class's an aclitem[] one, so
 * `SELECT ($1).data_type::text` declared as pg_sequences named any table by OID (red team, round
 * 11); a table's row type would show the columns of a table the rules do not list. Nor oid and
 * oid[]: beside a bigint column the server casts the column to oid, which raises for values past
 * its range, and `id = $1` is a condition pgwarden copies next to the tenant filter, where it
 * would run on other tenants' rows (red team, round 18).
 */
const DATA_TYPES = new Set([
  // void too: its input ignores the value, and pgJDBC declares a CallableStatement's OUT
  // parameter so (red team, round 50)
  0, 705, 2278,
  // bool, bytea, "char", name, int8, int2, int2vector, int4, text, tid, oidvector, json, xml
  16, 17, 18, 19, 20, 21, 22, 23, 25, 27, 30, 114, 142,
  // geometry, network, numeric, money, bit strings, date/time
  600, 601, 602, 603, 604, 628, 650, 700, 701, 718, 774, 790, 829, 869, 1042, 1043, 1082, 1083, 1114, 1184,
  1186, 1266, 1560, 1562, 1700,
  // refcursor, uuid, pg_lsn, tsvector, tsquery, jsonb, jsonpath
  1790, 2950, 3220, 3614, 3615, 3802, 4072,
  // ranges and multiranges
  3904, 3906, 3908, 3910, 3912, 3926, 4451, 4532, 4533, 4534, 4535, 4536,
  // arrays of the above
  143, 199, 629, 651, 719, 775, 791, 1000, 1001, 1002, 1003, 1005, 1006, 1007, 1009, 1010, 1013, 1014, 1015,
  1016, 1017, 1018, 1019, 1020, 1021, 1022, 1027, 1040, 1041, 1115, 1182, 1183, 1185, 1187, 1231, 1270, 1561,
  1563, 2201, 2951, 3221, 3643, 3645, 3807, 4073, 3905, 3907, 3909, 3911, 3913, 3927, 6150, 6151, 6152, 6153,
  6155, 6157,
]);

/**
 * Why the declared types cannot be accepted for this verdict, or undefined. Any parameter: a
 * built-in data type (DATA_TYPES) or none. A parameter with a tenant check: only a type
 * that reads its value exactly as the check does (tsvector turns 'acme' into "'acme'"), or none.
 */
export function declaredTypeProblem(
  v: Verdict,
  declared: readonly number[],
): { message: string; reason: string } | undefined {
  for (let i = 0; i < declared.length; i++) {
    const oid = declared[i] ?? 0;
    if (!DATA_TYPES.has(oid))
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
