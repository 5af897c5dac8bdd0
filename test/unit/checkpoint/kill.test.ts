import test from 'ava';
import { spawn } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findLatestCheckpoint, readCheckpoint, verifyCheckpoint, writeCheckpoint } from '../../../trainer/src/checkpoint/index.js';
import { buildPayload, tempDir } from './fixtures.js';

const WRITER = fileURLToPath(new URL('./kill-writer.js', import.meta.url));

/** Start the writer, wait for "ready", SIGKILL it `delayMs` later, wait for it to be gone. */
async function killWriterAfter(dir: string, startStep: number, delayMs: number): Promise<void> {
  const child = spawn(process.execPath, [WRITER, dir, String(startStep)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`writer exited early with ${code}`)));
  });
  await new Promise((r) => setTimeout(r, delayMs)); // real time on purpose: the point is an arbitrary moment
  child.kill('SIGKILL');
  await exited;
}

test('checkpoint - a writer killed at any moment leaves latest valid', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writeCheckpoint(dir, buildPayload(1), { keep: 2 });
  let startStep = 2;
  for (const delay of [0, 15, 40, 90, 160, 260, 400]) {
    await killWriterAfter(dir, startStep, delay);
    startStep += 10;
    const leftovers = (await readdir(dir)).filter((e) => e.startsWith('.'));
    t.log(`killed after ${delay} ms: ${(await readdir(dir)).filter((e) => e.startsWith('step-')).join(' ')}; leftovers: ${leftovers.join(' ') || 'none'}`);
    const pointed = (await readFile(join(dir, 'latest'), 'utf-8')).trim();
    await t.notThrowsAsync(verifyCheckpoint(join(dir, pointed)), `latest after a kill at ${delay} ms`);
    const found = await findLatestCheckpoint(dir);
    t.is(found, join(dir, pointed));
    if (found !== undefined) await t.notThrowsAsync(readCheckpoint(found));
  }
  await writeCheckpoint(dir, buildPayload(1000), { keep: 1 }); // cleans up after the killed writers
  t.deepEqual((await readdir(dir)).sort(), ['latest', 'step-00001000']);
});
