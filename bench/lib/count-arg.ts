/**
 * The one optional positional count a micro-benchmark takes (`[iterations]`, `[runs]`): prints the
 * usage for -h/--help, and refuses anything but a positive integer, rather than measuring NaN runs.
 */
export function countArg(usage: string, fallback: number): number {
  const arg = process.argv[2];
  if (arg === '-h' || arg === '--help') {
    console.log(usage);
    process.exit(0);
  }
  if (arg === undefined) return fallback;
  const n = Number(arg);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`expected a positive whole number, got "${arg}"\n${usage}`);
    process.exit(2);
  }
  return n;
}
