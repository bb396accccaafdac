/**
 * The current time as an ISO 8601 string, made at most once per millisecond: every record and
 * outcome carries one, and many statements finish within the same millisecond under load.
 */
let lastMs = -1;
let lastIso = '';

export function isoNow(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}
