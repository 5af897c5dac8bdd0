/** Fixture builders shared by the data tests. */

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dataset, Example } from '../../../trainer/src/data/index.js';

const created: string[] = [];

/** A fresh temporary directory, removed by removeTempDirs (register it with test.after.always). */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gmt-data-test-'));
  created.push(dir);
  return dir;
}

/** Remove every directory tempDir made in this test file's process. */
export async function removeTempDirs(): Promise<void> {
  await Promise.all(created.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

/** Write `lines` (joined by \n) to `name` inside a fresh temp dir; returns the path. */
export async function writeLines(name: string, lines: readonly string[]): Promise<string> {
  const path = join(await tempDir(), name);
  await writeFile(path, lines.join('\n'), 'utf8');
  return path;
}

/** An example whose ids are `ids` and whose loss mask is 1 exactly at positions `targets`. */
export function exampleOf(ids: readonly number[], targets: readonly number[]): Example {
  const lossMask = new Uint8Array(ids.length);
  for (const t of targets) lossMask[t] = 1;
  return { ids: Int32Array.from(ids), lossMask };
}

/** A dataset of `n` examples; example i is [1000+i, i+1 (repeated i % 3 + 1 times)] with loss on all but the first token. */
export function syntheticDataset(n: number, maxSeqLen = 8, padId = 999): Dataset {
  const examples: Example[] = [];
  for (let i = 0; i < n; i++) {
    const ids = [1000 + i, ...Array.from({ length: (i % 3) + 1 }, () => i + 1)];
    examples.push(exampleOf(ids, ids.map((_, t) => t).slice(1)));
  }
  return { source: 'test', examples, maxSeqLen, padId, truncated: 0, dropped: [] };
}
