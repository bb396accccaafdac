import { createHmac, hash as oneShotHash } from 'node:crypto';

/** The `prev` of an instance's first entry. */
export const GENESIS = '0'.repeat(64);

/**
 * One link of an instance's hash chain: the hash covers the previous link's hash and the exact
 * body text, so editing a body, dropping an entry or moving one breaks the chain at that point.
 * The optional HMAC keys the link, so someone who can write the store cannot recompute the chain.
 */
export interface Link {
  readonly seq: number;
  readonly prev: string;
  readonly hash: string;
  readonly mac: string | null;
}

export function linkHash(prev: string, body: string): string {
  // The one-shot form costs half of createHash() on a record-sized input; this runs per statement.
  return oneShotHash('sha256', prev + '\n' + body, 'hex');
}

export function linkMac(key: string, hash: string): string {
  return createHmac('sha256', key).update(hash).digest('hex');
}

/** The head of a chain: the last link written. Appending is the only way forward. */
export class Chain {
  private seq: number;
  private hash: string;

  constructor(
    head: { seq: number; hash: string },
    private readonly hmacKey: string | undefined,
  ) {
    this.seq = head.seq;
    this.hash = head.hash;
  }

  /** The head as {last seq, last hash}; a fresh chain is {0, GENESIS} and its first link is seq 1. */
  head(): { seq: number; hash: string } {
    return { seq: this.seq, hash: this.hash };
  }

  /** Computes the next link for `body` without committing it (the caller commits after the write). */
  peek(body: string): Link {
    const hash = linkHash(this.hash, body);
    return {
      seq: this.seq + 1,
      prev: this.hash,
      hash,
      mac: this.hmacKey === undefined ? null : linkMac(this.hmacKey, hash),
    };
  }

  commit(link: Link): void {
    this.seq = link.seq;
    this.hash = link.hash;
  }
}

/*
 * The store's bookkeeping rows (the delivered head, the anchor retention moves, the registry of
 * instances) are keyed too. Each MAC starts with its own label, so a link's MAC (over a hash alone)
 * can never be copied into a head or an anchor, nor one instance's row into another's.
 */

/** MAC of a delivered head: the instance's last link as (seq, hash). */
export function headMac(key: string, instance: string, seq: number, hash: string): string {
  return createHmac('sha256', key).update(`pgwarden head\n${instance}\n${seq}\n${hash}`).digest('hex');
}

/** MAC of an anchor: where the instance's chain starts after retention, and its cutoff. */
export function anchorMac(
  key: string,
  instance: string,
  seq: number,
  prevHash: string,
  cutoff: string | null,
): string {
  return createHmac('sha256', key)
    .update(`pgwarden anchor\n${instance}\n${seq}\n${prevHash}\n${cutoff ?? ''}`)
    .digest('hex');
}

/** MAC of an instance's registry entry: the store has seen this instance's chain. */
export function instanceMac(key: string, instance: string): string {
  return createHmac('sha256', key).update(`pgwarden instance\n${instance}`).digest('hex');
}
