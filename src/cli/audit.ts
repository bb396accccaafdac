import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import {
  openOrExplain,
  openSource,
  sourceArgs,
  sourceOptions,
  UsageError,
  type DecisionSource,
} from '../audit/cli-source.js';
import { resolveHmacKey } from '../audit/hmac-key.js';
import { spoolFiles, verifyLines } from '../audit/verify-lines.js';
import type { InstanceReport } from '../audit/verify.js';
import { loadConfigFile } from '../config/load.js';
import { printable } from './printable.js';

interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const usage = `usage: pgwarden audit verify [--config f | --database-url dsn | --api-url url --token t]
                            [--instance id] [--hmac-key-file f] [--json]
       pgwarden audit verify --ndjson file [--ndjson file ...] | --spool dir  [--config f | --hmac-key-file f]

Walks each instance's hash chain in the decision store (or in NDJSON files, e.g. a SIEM's copy,
or a local spool) and reports the first altered, deleted, reordered, inserted or forged record.
With --config, an anchor newer than audit.store.retentionDays allows is reported. NDJSON lines
outside the chain (chainSeq 0) are counted in a WARNING line and do not change the exit status;
a file cut at its end is only detectable against the store's head. Exit status:
0 intact, 1 a problem was found, 2 usage error, 3 the store could not be read (nothing checked).
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
      options: {
        ...sourceArgs,
        instance: { type: 'string' },
        json: { type: 'boolean' },
        ndjson: { type: 'string', multiple: true },
        spool: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    io.stderr(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  const files = [
    ...((values.ndjson as string[] | undefined) ?? []),
    ...(typeof values.spool === 'string' ? spoolFiles(values.spool) : []),
  ];
  const source = openOrExplain(
    () => (files.length > 0 ? linesSource(files, values) : openSource(sourceOptions(values))),
    usage,
    io.stderr,
  );
  if (!source) return 2;
  try {
    let reports;
    try {
      reports = await source.verify(values.instance as string | undefined);
    } catch (err) {
      // Not the same as a broken chain: nothing was checked.
      io.stderr(
        printable(`pgwarden audit verify: cannot read the decision store: ${(err as Error).message}`),
      );
      return 3;
    }
    // Lines outside the chain do not fail the check, but nothing vouches for them.
    const unchained = reports.reduce((n, r) => n + (r.unchained ?? 0), 0);
    if (values.json === true) {
      io.stdout(JSON.stringify({ ok: reports.every((r) => r.ok), unchained, instances: reports }));
    } else if (reports.length === 0) {
      io.stdout('no chains in the store');
    } else {
      for (const r of reports) {
        // Instance names, record ids and messages come from the store: escaped like `pgwarden log`.
        io.stdout(
          printable(
            r.ok
              ? `ok       ${r.instance}: ${r.checked} links intact (chain seq ${r.firstSeq}..${r.lastSeq})`
              : `BROKEN   ${r.instance}: ${r.problem?.kind} at chain seq ${r.problem?.chainSeq}` +
                  `${r.problem?.recordId ? ` (record ${r.problem.recordId})` : ''}: ${r.problem?.message}` +
                  ` [${r.checked} links intact before it]`,
          ),
        );
        if (r.anchor)
          io.stdout(
            printable(
              `         ${r.instance}: starts at its anchor, chain seq ${r.anchor.chainSeq}` +
                (r.anchor.cutoff
                  ? ` (retention deleted the entries before it, all older than ${r.anchor.cutoff})`
                  : ' (the anchor records no retention cutoff)'),
            ),
          );
        if ((r.unchained ?? 0) > 0)
          io.stdout(
            printable(
              `WARNING  ${r.instance}: ${r.unchained} line(s) outside the chain (chainSeq 0, written while ` +
                `the spool was full): not verifiable, they may have been edited, and removed ones leave no trace`,
            ),
          );
      }
    }
    return reports.every((r) => r.ok) ? 0 : 1;
  } finally {
    await source.close();
  }
}

/** NDJSON files or spool segments as a source that can only verify. */
function linesSource(files: string[], values: Record<string, unknown>): DecisionSource {
  const keyFile = values['hmac-key-file'];
  const key =
    typeof keyFile === 'string'
      ? readFileSync(keyFile, 'utf8').trim()
      : typeof values.config === 'string'
        ? resolveHmacKey(loadConfigFile(values.config).audit)
        : undefined;
  const unsupported = async (): Promise<never> => {
    throw new UsageError('only verify reads NDJSON files');
  };
  return {
    search: unsupported,
    session: unsupported,
    aggregate: unsupported,
    verify: async (instance?: string): Promise<InstanceReport[]> =>
      (await verifyLines(files, key)).filter((r) => instance === undefined || r.instance === instance),
    close: async () => {},
  };
}
