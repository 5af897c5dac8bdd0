/**
 * bench:mfu — training throughput per backend against two ceilings measured in the same run: the
 * backend's own best square fp32 matmul, and the machine's (native TensorFlow at all threads). FLOPs
 * per token are PaLM's 6N + 12·L·T·C (forward + backward). Each backend runs in its own process
 * (bench/mfu-worker.ts), one after the other, so they never share the cores.
 *
 * Environment: BENCH_BACKENDS (default: tensorflow when setup:native has built it, and wasm),
 * "% paired matmul": median over the repetitions of the step's GFLOP/s over a square matmul's timed right
 * after it (wall time, and per CPU-second): robust to load that drifts during the run.
 * BENCH_MODELS (default per backend: tensorflow tiny,small,gpt2; wasm tiny,small; cpu tiny),
 * BENCH_THREADS (TensorFlow threads, default 0 = all cores), BENCH_REPS (timed repetitions, default 3).
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { nativeBuilt } from '../trainer/src/backend.js';

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'mfu-worker.js');
const DEFAULT_MODELS: Record<string, string> = { tensorflow: 'tiny,small,gpt2', wasm: 'tiny,small', cpu: 'tiny' };

const Line = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('matmul'), backend: z.string(), threads: z.number(), gflops: z.number(), size: z.number() }),
  z.object({
    kind: z.literal('step'),
    backend: z.string(),
    threads: z.number(),
    preset: z.string(),
    params: z.number(),
    B: z.number(),
    T: z.number(),
    step: z.number(),
    tokensPerSecond: z.number(),
    gflops: z.number(),
    pairedRatio: z.number(),
    pairedCpuRatio: z.number(),
    phases: z.object({ forward: z.number(), backward: z.number(), optimizer: z.number(), mask: z.number() }),
  }),
]);
type Line = z.infer<typeof Line>;

function runWorker(args: readonly string[]): Promise<Line[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '',
      err = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`mfu-worker ${args.join(' ')} exited ${code}:\n${err.split('\n').slice(-15).join('\n')}`));
        return;
      }
      resolve(
        out
          .trim()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => Line.parse(JSON.parse(l))),
      );
    });
  });
}

const backends = (process.env['BENCH_BACKENDS'] ?? (nativeBuilt() ? 'tensorflow,wasm' : 'wasm')).split(',');
const threads = Number(process.env['BENCH_THREADS'] ?? 0);
const lines: Line[] = [];
for (const b of backends) {
  const models = process.env['BENCH_MODELS'] ?? DEFAULT_MODELS[b] ?? 'tiny';
  process.stderr.write(`bench:mfu: ${b} (${models})…\n`);
  lines.push(...(await runWorker([b, String(threads), models])));
}
// The machine's ceiling: native TensorFlow's matmul at all threads (measured here unless already measured so).
let machine = lines.find((l) => l.kind === 'matmul' && l.backend.startsWith('tensorflow') && threads === 0);
if (machine === undefined && nativeBuilt()) machine = (await runWorker(['tensorflow', '0', '', '--matmul-only']))[0];

const f1 = (x: number): string => x.toFixed(1);
const ms = (s: number): string => `${Math.round(s * 1000)}`;
console.log(`\nbench:mfu — ceilings measured in this run (best square fp32 matmul):`);
for (const l of lines) if (l.kind === 'matmul') console.log(`  ${l.backend.padEnd(15)} ${l.threads} thread(s): ${f1(l.gflops)} GFLOP/s (${l.size}³)`);
if (machine?.kind === 'matmul') console.log(`  machine (native, ${machine.threads} threads): ${f1(machine.gflops)} GFLOP/s`);
else console.log('  machine: native backend not built (npm run setup:native), no machine ceiling');
console.log(
  '\n| backend | threads | preset | params | batch | step ms | tokens/s | GFLOP/s | % own matmul | % machine | % paired matmul | % paired matmul, CPU time | forward ms | backward ms | optimizer ms | mask ms |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const l of lines) {
  if (l.kind !== 'step') continue;
  const own = lines.find((m) => m.kind === 'matmul' && m.backend === l.backend);
  const pct = (g: number | undefined): string => (g === undefined ? '—' : `${f1((100 * l.gflops) / g)}%`);
  console.log(
    `| ${l.backend} | ${l.threads} | ${l.preset} | ${l.params.toLocaleString('en-US')} | ${l.B}×${l.T} | ${ms(l.step)} | ${Math.round(l.tokensPerSecond)} | ${f1(l.gflops)} | ${pct(own?.kind === 'matmul' ? own.gflops : undefined)} | ${pct(machine?.kind === 'matmul' ? machine.gflops : undefined)} | ${f1(100 * l.pairedRatio)}% | ${f1(100 * l.pairedCpuRatio)}% | ${ms(l.phases.forward)} | ${ms(l.phases.backward)} | ${ms(l.phases.optimizer)} | ${ms(l.phases.mask)} |`,
  );
}
console.log('\ncollective: none in one process; `npm run bench:dp` compares data-parallel ranks with one process.');
