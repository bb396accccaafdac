import { isIPv4, isIPv6 } from 'node:net';

/** An IPv4 client seen through an IPv6 socket: ::ffff:a.b.c.d. */
const V4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  if (isIPv4(address)) return address.startsWith('127.');
  if (isIPv6(address)) return address === '::1' || address.startsWith('::ffff:127.');
  return false;
}

/**
 * The part of a client's address that one party controls, for per-address limits: the IPv4
 * address, or the IPv6 /64 (the smallest block a site is given: one host can use all of it).
 */
export function addressKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const mapped = V4_MAPPED.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  return `${expandIPv6(address).slice(0, 4).join(':')}::/64`;
}

/** The eight hextets of an IPv6 address, '::' expanded and a trailing dotted quad converted. */
function expandIPv6(address: string): string[] {
  let text = address.split('%')[0]!.toLowerCase();
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((h) => h.replace(/^0+(?=.)/, ''));
}
