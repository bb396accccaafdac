import { parseArgs } from 'node:util';
import { openSource, sourceArgs, sourceOptions, UsageError } from '../audit/cli-source.js';

interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const usage = `usage: pgwarden audit verify [--config f | --database-url dsn | --api-url url --token t]
                            [--instance id] [--hmac-key-file f] [--json]

Walks each instance's hash chain in the decision store and reports the first altered, deleted or
reordered record. Exit status: 0 intact, 1 a problem was found, 2 usage error, 3 the store
could not be read (nothing was checked).
`;

/** `pgwarden audit verify`. */
export async function auditCommand(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'verify') {
    io.stderr(usage);
    return sub === undefined || sub === 'help' || sub === '--help' ? 0 : 2;
  }
  let values: Record<string, unknown>;
  try {
    values = parseArgs({
      args: rest,
      options: { ...sourceArgs, instance: { type: 'string' }, json: { type: 'boolean' } },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    io.stderr(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  let source;
  try {
    source = openSource(sourceOptions(values));
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`${err.message}\n${usage}`);
      return 2;
    }
    throw err;
  }
  try {
    let reports;
    try {
      reports = await source.verify(values.instance as string | undefined);
    } catch (err) {
      // Not the same as a broken chain: nothing was checked.
      io.stderr(`pgwarden audit verify: cannot read the decision store: ${(err as Error).message}`);
      return 3;
    }
    if (values.json === true) {
      io.stdout(JSON.stringify({ ok: reports.every((r) => r.ok), instances: reports }));
    } else if (reports.length === 0) {
      io.stdout('no chains in the store');
    } else {
      for (const r of reports) {
        io.stdout(
          r.ok
            ? `ok       ${r.instance}: ${r.checked} links intact (chain seq ${r.firstSeq}..${r.lastSeq})`
            : `BROKEN   ${r.instance}: ${r.problem?.kind} at chain seq ${r.problem?.chainSeq}` +
                `${r.problem?.recordId ? ` (record ${r.problem.recordId})` : ''}: ${r.problem?.message}` +
                ` [${r.checked} links intact before it]`,
        );
      }
    }
    return reports.every((r) => r.ok) ? 0 : 1;
  } finally {
    await source.close();
  }
}
