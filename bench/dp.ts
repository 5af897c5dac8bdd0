/**
 * bench:dp — data-parallel on the same cores: `--workers 2` ranks with 1 TensorFlow thread each (gradients
 * reduce-scattered over an embedded nats-server) against one process with 2 threads and
 * `--accum-steps 2` (the same samples per optimizer step, bit-identical results). Small preset,
 * B16×T128 per micro-batch; samples/s as the trainer reports it (training time only). One run each,
 * on a shared machine: noisy.
 *
 * Environment: BENCH_STEPS (default 6), BENCH_BACKEND (default auto), BENCH_MODEL (default small).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'trainer', 'src', 'main.js');
const steps = process.env['BENCH_STEPS'] ?? '6';
const common = [
  '--base-model',
  'none',
  '--model-preset',
  process.env['BENCH_MODEL'] ?? 'small',
  '--seq-len',
  '128',
  '--micro-batch-size',
  '16',
  '--steps',
  steps,
  '--eval-examples',
  '1',
  '--max-new-tokens',
  '1',
  '--progress',
  'none',
  '--backend',
  process.env['BENCH_BACKEND'] ?? 'auto',
];

function run(args: readonly string[]): Promise<{ sps: number; seconds: number; backend: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...common, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.on('close', (code) => {
      const m = /throughput\s+([\d.]+) samples\/s · \d+ tokens\/s · ([\d.]+) s/.exec(out);
      const b = /steps on (\S+) \(/.exec(out);
      if (code !== 0 || m === null) {
        reject(new Error(`gmt-train ${args.join(' ')} exited ${code}:\n${out.split('\n').slice(-20).join('\n')}`));
        return;
      }
      resolve({ sps: Number(m[1]), seconds: Number(m[2]), backend: b?.[1] ?? '?' });
    });
  });
}

const dir = await mkdtemp(join(tmpdir(), 'gmt-bench-dp-'));
try {
  const variants = [
    { name: '1 process × 2 threads, --accum-steps 2', args: ['--threads', '2', '--accum-steps', '2', '--checkpoint-dir', join(dir, 'one')] },
    { name: '--workers 2 × 1 thread (NATS)', args: ['--workers', '2', '--threads', '1', '--checkpoint-dir', join(dir, 'dp')] },
  ];
  console.log(`bench:dp  ${common.slice(0, 12).join(' ')}`);
  for (const v of variants) {
    const r = await run(v.args);
    console.log(`  ${v.name.padEnd(42)} ${r.backend.padEnd(15)} ${r.sps.toFixed(2).padStart(7)} samples/s  (${r.seconds.toFixed(1)} s of training)`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
