import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { segmentName } from './spool-layout.js';
import { SpoolReader } from './spool-reader.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('SpoolReader', () => {
  it("cuts batches at 16 MB of text: 700 records of 128 KiB made a COPY text past V8's longest string", async () => {
    dir = mkdtempSync(join(tmpdir(), 'pgw-reader-'));
    const line = (i: number): string => `{"msg":"decision","i":${i},"x":"${'a'.repeat(400_000)}"}`;
    const lines = Array.from({ length: 60 }, (_, i) => line(i));
    writeFileSync(join(dir, segmentName(1)), lines.join('\n') + '\n');
    writeFileSync(join(dir, segmentName(61)), '');
    const reader = new SpoolReader(dir, () => {}, {});
    const seen: number[] = [];
    for (let round = 0; round < 10 && seen.length < 60; round++) {
      const batch = await reader.read(1000);
      expect(batch.lines.decisions.join('').length).toBeLessThan(16 * 1024 * 1024 + 400_100);
      for (const l of batch.lines.decisions) seen.push((JSON.parse(l) as { i: number }).i);
      await reader.commit(batch);
    }
    // Every line once, in order, over several batches.
    expect(seen).toEqual(lines.map((_, i) => i));
  });
});
