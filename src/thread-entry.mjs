// Entry of pgwarden's worker threads; the module to run is the worker's first argument, relative
// to src/ and without extension (audit/shipper-thread, policy/judge-thread). A worker does not
// inherit the main thread's tsx loader, so when pgwarden runs from its TypeScript sources the
// worker registers it itself.
import { existsSync } from 'node:fs';
import process from 'node:process';
import { URL } from 'node:url';

const name = process.argv[2];
if (!/^[a-z]+\/[a-z-]+$/.test(name ?? '')) throw new Error(`not a pgwarden thread module: ${name}`);
const compiled = new URL(`./${name}.js`, import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(`./${name}.ts`);
}
