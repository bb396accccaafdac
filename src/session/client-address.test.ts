import { describe, expect, it } from 'vitest';
import { addressKey, isLoopback } from './client-address.js';

describe('client address keys for per-address limits', () => {
  it('keys IPv4 by the address, IPv4-mapped IPv6 as IPv4', () => {
    expect(addressKey('10.1.2.3')).toBe('10.1.2.3');
    expect(addressKey('::ffff:10.1.2.3')).toBe('10.1.2.3');
  });

  it('keys IPv6 by its /64, however the address is written', () => {
    expect(addressKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:0db8:0001:0002:ffff:1:2:3')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    // Another /64 of the same site is another key.
    expect(addressKey('2001:db8:1:3::1')).not.toBe(addressKey('2001:db8:1:2::1'));
  });

  it('keys a socket that no longer knows its peer apart', () => {
    expect(addressKey(undefined)).toBe('unknown');
  });
});

describe('loopback clients', () => {
  it('are 127.0.0.0/8 and ::1, mapped or not', () => {
    for (const a of ['127.0.0.1', '127.0.0.2', '::1', '::ffff:127.0.0.1']) expect(isLoopback(a)).toBe(true);
    for (const a of ['10.0.0.1', '::2', '::ffff:10.0.0.1', undefined]) expect(isLoopback(a)).toBe(false);
  });
});
