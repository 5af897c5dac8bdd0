/**
 * Resume: train, checkpoint, kill (SIGKILL mid-run, or SIGTERM for a graceful stop), resume → the
 * final parameters and optimizer state are bit-identical to an uninterrupted run.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT_CODES } from '../../../contract/exit-codes.js';
import { CLI, MICRO_MODEL, runCli } from '../../helpers/cli.js';

const args = (dir: string, method: string) => [
  ...MICRO_MODEL,
  '--micro-batch-size',
  '8',
  '--steps',
  '40',
  '--checkpoint-every',
  '5',
  '--keep-checkpoints',
  '3',
  '--eval-examples',
  '4',
  '--progress',
  'none',
  '--method',
  method,
  '--checkpoint-dir',
  dir,
];

async function finalFiles(dir: string): Promise<{ model: Buffer; optimizer: Buffer }> {
  const latest = (await readFile(join(dir, 'latest'), 'utf-8')).trim();
  if (latest !== 'step-00000040') throw new Error(`latest is ${latest}`);
  return { model: await readFile(join(dir, latest, 'model.safetensors')), optimizer: await readFile(join(dir, latest, 'optimizer.safetensors')) };
}

async function waitFor(path: string, child: ReturnType<typeof spawn>, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  while (!existsSync(path)) {
    if (child.exitCode !== null) throw new Error('child exited before the checkpoint appeared');
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${path}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const [method, signal] of [
  ['gmt', 'SIGKILL'],
  ['random', 'SIGKILL'],
  ['gmt', 'SIGTERM'],
] as const) {
  test(`resume - ${method}: ${signal} after a checkpoint, then resume → bit-identical to the uninterrupted run`, async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'gmt-resume-'));
    try {
      const straight = join(root, 'straight'),
        broken = join(root, 'broken');
      const a = await runCli(args(straight, method));
      t.is(a.code, 0, a.stderr);
      const child = spawn(process.execPath, [CLI, ...args(broken, method)], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, sig) => r({ code, signal: sig })));
      await waitFor(join(broken, 'step-00000010'), child, 120_000);
      child.kill(signal);
      const e = await exited;
      if (signal === 'SIGKILL') t.is(e.signal, 'SIGKILL', 'the run was killed mid-way');
      else t.is(e.code, EXIT_CODES.interrupted, stderr);
      t.false(existsSync(join(broken, 'step-00000040')), 'interrupted before the end');
      const b = await runCli(args(broken, method));
      t.is(b.code, 0, b.stderr);
      t.regex(b.stderr, /resumed/);
      const [x, y] = [await finalFiles(straight), await finalFiles(broken)];
      t.true(x.model.equals(y.model), 'model.safetensors bit-identical');
      t.true(x.optimizer.equals(y.optimizer), 'optimizer.safetensors bit-identical');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
}
