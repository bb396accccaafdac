// Entry of the shipper's worker thread. A worker does not inherit the main thread's tsx loader,
// so when pgwarden runs from its TypeScript sources the worker registers it itself.
import { existsSync } from 'node:fs';
import { URL } from 'node:url';

const compiled = new URL('./shipper-thread.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./shipper-thread.ts');
}
