/**
 * Who an agent acts for. This is the one thing the policy engine and the decision log receive
 * about the caller; it comes only from a verified token.
 */
export interface Identity {
  /** The human the agent acts for (the token's subject). */
  readonly human: string;
  /** The agent: the RFC 8693 actor claim `act.sub`, else the startup user name. */
  readonly agent: string;
  readonly tenant: string;
  readonly roles: readonly string[];
  readonly tokenId: string | undefined;
  /** Seconds since the epoch; undefined if the token has no `exp`. */
  readonly expiresAt: number | undefined;
}
