/**
 * Tenant ids and the tenant column types they are written for: one list, read when the rules are
 * checked (catalog.ts: a tenant column of another type is refused) and when a statement is judged.
 */

/** A whole number as PostgreSQL prints it: no sign on zero, no leading zeros, no spaces. */
const CANONICAL_INTEGER = /^(0|-?[1-9]\d*)$/;
const integerRange = (bits: number) => {
  const max = 2n ** BigInt(bits - 1);
  return (t: string): boolean => CANONICAL_INTEGER.test(t) && BigInt(t) >= -max && BigInt(t) < max;
};

/**
 * The tenant ids each tenant column type accepts: only the form the server prints a value in, so
 * that one tenant has one id. `042` and `42` were one tenant in an integer table and two in a
 * text table; an uppercase or unhyphenated uuid likewise; `acme ` is `acme` to a char(n) column;
 * an id past int4's range failed every statement at run time (red team, round 44).
 */
const tenantFormats: Readonly<Record<string, (tenant: string) => boolean>> = {
  int2: integerRange(16),
  int4: integerRange(32),
  int8: integerRange(64),
  numeric: (t) => CANONICAL_INTEGER.test(t),
  uuid: (t) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(t),
  text: () => true,
  varchar: () => true,
  bpchar: (t) => !t.endsWith(' '),
};

/** Whether the caller's tenant id is a valid value of the tenant column's type. */
export function tenantFitsType(tenant: string, type: string): boolean {
  return tenantFormats[type]?.(tenant) ?? false;
}

/** The types a tenant column may have: those a tenant id is written for. */
export const TENANT_COLUMN_TYPES: readonly string[] = Object.keys(tenantFormats);
