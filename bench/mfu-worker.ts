/**
 * One backend's part of bench:mfu, in its own process (TensorFlow reads its thread counts once, when
 * the binding loads). argv: <backend> <threads> <presets,...> [--matmul-only]. Prints one JSON line per
 * result on stdout: the backend's best square matmul, then per preset the training step and its phases.
 *
 * The step is also paired with a square matmul of the peak's size timed right after each repetition:
 * the medians of step/matmul GFLOP/s in wall time and per CPU-second hold up on a shared machine,
 * where a peak measured once and steps measured later see different loads.
 *
 * Phases of one optimizer step, each timed on its own (medians): forward = the loss alone; backward =
 * loss+gradients minus forward; optimizer = an SFT update (clip + AdamW on every entry); mask = a GMT
 * update (r = 0.2, per-tensor threshold, masked AdamW) minus the SFT update. The collective phase does not
 * exist in one process; bench/dp.ts measures data-parallel runs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendChoice } from '../trainer/src/backend.js';
import { TrainerConfigSchema } from '../contract/config.js';
import { MODEL_PRESETS, type ModelPreset, trainFlopsPerToken } from '../trainer/src/model/config.js';
import { Gpt2Model } from '../trainer/src/model/gpt2.js';
import { initParams } from '../trainer/src/model/init.js';
import { createOptimizerState } from '../trainer/src/optim/optimizer.js';
import { optimizerParams, scheduleParams } from '../trainer/src/update/method.js';
import { Updater } from '../trainer/src/update/updater.js';
import { median, randomBatch } from './common.js';

/** Batch shape per preset: small B16×T128 and gpt2 B4×T128 as the issue fixes them; tiny B16×T64 (its nPositions). */
export const BENCH_SHAPES: Record<ModelPreset, { B: number; T: number }> = {
  micro: { B: 16, T: 32 },
  tiny: { B: 16, T: 64 },
  small: { B: 16, T: 128 },
  gpt2: { B: 4, T: 128 },
};

function time(fn: () => void, reps: number): number {
  const xs: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    xs.push((performance.now() - t0) / 1000);
  }
  return median(xs);
}

/** Best of square fp32 matmuls of several sizes (GFLOP/s, size). */
function matmulPeak(sizes: readonly number[]): { gflops: number; size: number } {
  let best = { gflops: 0, size: 0 };
  for (const n of sizes) {
    const a = tf.randomNormal([n, n]),
      b = tf.randomNormal([n, n]);
    tf.tidy(() => tf.matMul(a, b)).dataSync();
    const reps = Math.max(3, Math.round(6e9 / (2 * n ** 3)));
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) {
      const c = tf.matMul(a, b);
      c.dataSync();
      c.dispose();
    }
    const g = (2 * n ** 3 * reps) / ((performance.now() - t0) / 1000) / 1e9;
    if (g > best.gflops) best = { gflops: g, size: n };
    a.dispose();
    b.dispose();
  }
  return best;
}

/** Wall and CPU seconds (process.cpuUsage: all threads) of one call. */
function timed(fn: () => void): { wall: number; cpu: number } {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  fn();
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1e6 };
}

/** One n³ square matmul rate: GFLOP/s of wall time and GFLOP per CPU-second. */
function matmulRate(n: number): { gflops: number; cpuGflops: number } {
  const a = tf.randomNormal([n, n]),
    b = tf.randomNormal([n, n]);
  const reps = Math.max(3, Math.round(3e9 / (2 * n ** 3)));
  const t = timed(() => {
    for (let i = 0; i < reps; i++) tf.tidy(() => tf.matMul(a, b)).dispose();
  });
  a.dispose();
  b.dispose();
  const flops = 2 * n ** 3 * reps;
  return { gflops: flops / t.wall / 1e9, cpuGflops: flops / t.cpu / 1e9 };
}

const [backendArg, threadsArg, presetsArg, flag] = process.argv.slice(2);
const backend = await initBackend((backendArg ?? 'auto') as BackendChoice, { threads: Number(threadsArg ?? 0) });
const emit = (o: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ backend: backend.label, threads: backend.threads, ...o })}\n`);
};
const peak = matmulPeak(backend.name === 'cpu' ? [256, 512] : [256, 512, 1024, 2048]);
emit({ kind: 'matmul', gflops: peak.gflops, size: peak.size });
if (flag !== '--matmul-only') {
  const reps = Number(process.env['BENCH_REPS'] ?? 3);
  for (const preset of (presetsArg ?? 'tiny,small').split(',') as ModelPreset[]) {
    const cfg = MODEL_PRESETS[preset];
    const { B, T } = BENCH_SHAPES[preset];
    const model = new Gpt2Model(cfg);
    const params = initParams(model.layout, 1);
    const batch = randomBatch(cfg.vocabSize, B, T);
    const grads = new Float32Array(model.layout.size);
    model.lossAndGrads(params, batch, grads); // warm-up: kernels, allocations
    const flops = trainFlopsPerToken(cfg, T) * B * T;
    // Each step paired with the square matmul right after it, both in wall and in CPU time: on a
    // shared machine the load drifts between a peak measured once and the steps measured later.
    const paired: number[] = [],
      pairedCpu: number[] = [],
      steps: number[] = [];
    for (let i = 0; i < reps; i++) {
      const st = timed(() => model.lossAndGrads(params, batch, grads));
      const mm = matmulRate(peak.size);
      steps.push(st.wall);
      paired.push(flops / st.wall / 1e9 / mm.gflops);
      pairedCpu.push(flops / st.cpu / 1e9 / mm.cpuGflops);
    }
    const step = median(steps);
    const forward = time(() => model.loss(params, batch), reps);
    const updaters = (['sft', 'gmt'] as const).map((method) => {
      const c = TrainerConfigSchema.parse({ method, maskRatio: 0.2, steps: 1000 });
      return { u: new Updater(model.layout, c, optimizerParams(c), scheduleParams(c)), p: params.slice(), s: createOptimizerState('adamw', model.layout.size) };
    });
    const upd = updaters.map((x) => {
      let k = 0;
      x.u.update(k++, x.p, grads.slice(), x.s);
      return time(() => x.u.update(k++, x.p, grads.slice(), x.s), reps);
    });
    const copy = time(() => grads.slice(), reps); // the grads.slice() inside the update timings
    emit({
      kind: 'step',
      preset,
      params: model.layout.size,
      B,
      T,
      step,
      tokensPerSecond: (B * T) / step,
      gflops: flops / step / 1e9,
      pairedRatio: median(paired),
      pairedCpuRatio: median(pairedCpu),
      phases: { forward, backward: Math.max(0, step - forward), optimizer: Math.max(0, upd[0]! - copy), mask: Math.max(0, upd[1]! - upd[0]!) },
    });
  }
}
