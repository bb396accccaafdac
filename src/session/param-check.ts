import type { ParamCheck } from '../policy/verdict.js';

/**
 * Checks a Bind parameter the policy could only constrain, not see, at Parse time (e.g. an
 * INSERT's tenant column given as $2). Text and binary formats are both read, as the server would.
 * https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-FORMAT-CODES
 * Returns a message for the agent if the value is not allowed, else undefined.
 */
export function checkParam(
  check: ParamCheck,
  value: Buffer | null | undefined,
  format: number,
): string | undefined {
  if (value === null || value === undefined) return check.message;
  const actual =
    format === 0 ? normaliseText(value.toString('utf8'), check.type) : readBinary(value, check.type);
  if (actual === undefined) return check.message;
  return actual === normaliseText(check.equals, check.type) ? undefined : check.message;
}

function normaliseText(v: string, type: ParamCheck['type']): string | undefined {
  switch (type) {
    case 'text':
      return v;
    case 'int4':
    case 'int8': {
      const t = v.trim();
      if (!/^[+-]?\d+$/.test(t)) return undefined;
      return BigInt(t).toString();
    }
    case 'uuid': {
      const hex = v.trim().toLowerCase().replace(/[{}-]/g, '');
      return /^[0-9a-f]{32}$/.test(hex) ? hex : undefined;
    }
  }
}

function readBinary(b: Buffer, type: ParamCheck['type']): string | undefined {
  switch (type) {
    case 'text':
      return b.toString('utf8');
    case 'int4':
      return b.length === 4 ? String(b.readInt32BE(0)) : undefined;
    case 'int8':
      return b.length === 8 ? b.readBigInt64BE(0).toString() : undefined;
    case 'uuid':
      return b.length === 16 ? b.toString('hex') : undefined;
  }
}
