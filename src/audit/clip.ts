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

/**
 * `text` as a record keeps it: whole up to `max` characters, else its head and its length. A
 * client decides how long the names and messages it sends are; a record of a 15 MiB statement
 * name wrote 15 MiB of NDJSON and spool per message (red team, round 12).
 */
export function clippedText(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${headOf(text, max)}... (${text.length} characters)`;
}
