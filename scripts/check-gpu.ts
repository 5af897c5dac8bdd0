// `npm run check:gpu`: the one-command check for a machine with an NVIDIA GPU. It
//  1. refuses to run (exit 1, one line) when no GPU is visible: nothing here may pass without one;
//  2. builds the GPU backend (`setup:native --gpu`: tensorflow + CUDA wheels from PyPI);
//  3. proves TensorFlow placed work on the GPU (its device-creation log line, and a matmul timed there);
//  4. runs the golden PyTorch tests (they pick tfjs-node-gpu when a GPU is visible);
//  5. runs bench:mfu on the native backend;
//  6. runs a 2-rank data-parallel training with a parameter-hash check every step;
// and prints a short report. Any failing step fails the check (exit 1) with its output's tail.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST = join(ROOT, 'dist');

interface StepResult {
  readonly name: string;
  readonly ok: boolean;
  readonly seconds: number;
  readonly detail: string;
}

function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (b: Buffer): void => {
      out += b.toString();
      process.stderr.write(b);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', (err) => resolvePromise({ code: 127, out: `${out}\n${err.message}` }));
    child.on('close', (code) => resolvePromise({ code: code ?? 1, out }));
  });
}

/** The NVIDIA device nodes looked for; GMT_GPU_DEVICES (comma-separated) replaces them (tests). */
const DEVICES = (process.env['GMT_GPU_DEVICES'] ?? '/dev/nvidiactl,/dev/nvidia0').split(',');

function gpuVisible(): string | undefined {
  return DEVICES.find((dev) => existsSync(dev));
}

// Loads tfjs-node-gpu with TensorFlow's own logging on, and times a 4096² matmul on the default device.
const PROBE_JS = `
const util = require('node:util');
if (typeof util.isNullOrUndefined !== 'function') util.isNullOrUndefined = (v) => v === null || v === undefined;
const tf = require(process.argv[1]);
const n = 4096, a = tf.randomNormal([n, n]), b = tf.randomNormal([n, n]);
tf.matMul(a, b).dataSync();
const t0 = Date.now(); for (let i = 0; i < 10; i++) tf.matMul(a, b).dataSync();
console.log('probe-gflops', (2 * n ** 3 * 10 / ((Date.now() - t0) / 1000) / 1e9).toFixed(0));
`;

async function main(): Promise<number> {
  const dev = gpuVisible();
  if (dev === undefined) {
    process.stderr.write(`check:gpu: FAILED: no NVIDIA GPU visible (${DEVICES.join(', ')} missing); nothing was checked\n`);
    return 1;
  }
  const results: StepResult[] = [];
  const step = async (
    name: string,
    cmd: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv,
    judge: (out: string) => string | undefined,
  ): Promise<boolean> => {
    process.stderr.write(`\ncheck:gpu: ${name}…\n`);
    const t0 = Date.now();
    const r = await run(cmd, args, env);
    const problem = r.code !== 0 ? `exit ${r.code}` : judge(r.out);
    const tail = r.out.trim().split('\n').slice(-3).join(' | ');
    results.push({ name, ok: problem === undefined, seconds: (Date.now() - t0) / 1000, detail: problem === undefined ? tail : `${problem}: ${tail}` });
    return problem === undefined;
  };
  const node = process.execPath;
  const tmp = await mkdtemp(join(tmpdir(), 'gmt-check-gpu-'));
  try {
    const ok =
      (await step('build the GPU backend (setup:native --gpu)', node, [join(DIST, 'scripts', 'setup-native.js'), '--gpu'], {}, () => undefined)) &&
      (await step(
        'TensorFlow creates a GPU device and runs a matmul on it',
        node,
        ['-e', PROBE_JS, join(ROOT, 'node_modules', '@tensorflow', 'tfjs-node-gpu')],
        { TF_CPP_MIN_LOG_LEVEL: '0' },
        (out) => (/Created device \S*device:GPU:0/.test(out) ? undefined : 'no "Created device …GPU:0" line in TensorFlow\'s log: it ran on the CPU'),
      )) &&
      (await step(
        'golden PyTorch tests on the GPU',
        node,
        [join(ROOT, 'node_modules', 'ava', 'entrypoints', 'cli.mjs'), 'dist/test/unit/model/golden.test.js', '--verbose'],
        {},
        (out) => (/\(tensorflow\)/.test(out) ? undefined : 'the golden tests did not run on the tensorflow backend'),
      ));
    if (ok) {
      await step('bench:mfu on the GPU', node, [join(DIST, 'bench', 'mfu.js')], { BENCH_BACKENDS: 'tensorflow' }, (out) =>
        /tensorflow\/gpu/.test(out) ? undefined : 'bench did not run on tensorflow/gpu',
      );
      await step(
        '2-rank data-parallel run on the GPU (hash check every step)',
        node,
        [
          join(DIST, 'trainer', 'src', 'main.js'),
          '--workers',
          '2',
          '--backend',
          'tensorflow',
          '--base-model',
          'none',
          '--model-preset',
          'small',
          '--seq-len',
          '128',
          '--micro-batch-size',
          '16',
          '--steps',
          '20',
          '--hash-every',
          '1',
          '--eval-examples',
          '4',
          '--progress',
          'none',
          '--checkpoint-dir',
          join(tmp, 'dp'),
        ],
        {},
        (out) => (/steps on tensorflow\/gpu/.test(out) ? undefined : 'the run did not report tensorflow/gpu'),
      );
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  process.stdout.write(`\ncheck:gpu report (GPU device ${dev})\n`);
  for (const r of results) process.stdout.write(`  ${r.ok ? 'PASS' : 'FAIL'}  ${r.name} (${r.seconds.toFixed(0)} s)\n        ${r.detail}\n`);
  const failed = results.filter((r) => !r.ok).length;
  process.stdout.write(failed === 0 ? 'check:gpu: all checks passed\n' : `check:gpu: FAILED (${failed} step(s))\n`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`check:gpu: FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
