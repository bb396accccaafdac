/**
 * The first `max` UTF-16 units of `s`, never ending on half of a surrogate pair: a lone surrogate
 * is invalid JSON to PostgreSQL's jsonb and to strict NDJSON readers, so a record quoting one
 * could be refused by the store or break a reader of the log.
 */
export function headOf(s: string, max: number): string {
  if (s.length <= max) return s;
  const last = s.charCodeAt(max - 1);
  return s.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}
