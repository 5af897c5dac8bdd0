/**
 * bench:step — optimizer-step time of SFT vs GMT (r = 0.2 and 0.9, tensor and global scope) on the same model, batch and
 * backend, measured interleaved in one run (round-robin, the order rotated every round so no variant always runs
 * first), so drift hits all equally. Goal: GMT overhead ≤ 3% (the paper measured GMT 6-14% slower than SFT).
 *
 * Forward and backward are the same computation for every variant, so the overhead is the update's: besides the
 * median wall-clock step and its spread (min–max over the rounds, which swings with other jobs' load on a shared
 * machine), it reports (median GMT update − median SFT update) over the median SFT step, in wall time (the update
 * runs on the native library's threads while TensorFlow is idle) and in CPU time (process.cpuUsage, all threads:
 * steadier under load, but it counts a two-thread update twice). Environment: BENCH_MODEL (tiny), BENCH_ROUNDS (8),
 * BENCH_BACKEND (auto), BENCH_BATCH (16), BENCH_SEQ (64).
 */
import { initBackend } from '../trainer/src/backend.js';
import { TrainerConfigSchema } from '../contract/config.js';
import { MODEL_PRESETS, type ModelPreset } from '../trainer/src/model/config.js';
import { Gpt2Model } from '../trainer/src/model/gpt2.js';
import { initParams } from '../trainer/src/model/init.js';
import { createOptimizerState } from '../trainer/src/optim/optimizer.js';
import { optimizerParams, scheduleParams } from '../trainer/src/update/method.js';
import { Updater } from '../trainer/src/update/updater.js';
import { median, randomBatch } from './common.js';

const preset = (process.env['BENCH_MODEL'] ?? 'tiny') as ModelPreset;
const rounds = Number(process.env['BENCH_ROUNDS'] ?? 8);
const backend = await initBackend((process.env['BENCH_BACKEND'] ?? 'auto') as 'auto');
const cfg = MODEL_PRESETS[preset];
const model = new Gpt2Model(cfg);
const B = Number(process.env['BENCH_BATCH'] ?? 16),
  T = Math.min(Number(process.env['BENCH_SEQ'] ?? 64), cfg.nPositions);
const batch = randomBatch(cfg.vocabSize, B, T);
const variants = [
  { name: 'sft', over: { method: 'sft' } },
  { name: 'gmt r=0.2 tensor', over: { method: 'gmt', maskRatio: 0.2, maskScope: 'tensor' } },
  { name: 'gmt r=0.9 tensor', over: { method: 'gmt', maskRatio: 0.9, maskScope: 'tensor' } },
  { name: 'gmt r=0.2 global', over: { method: 'gmt', maskRatio: 0.2, maskScope: 'global' } },
  { name: 'gmt r=0.9 global', over: { method: 'gmt', maskRatio: 0.9, maskScope: 'global' } },
].map((v) => {
  const c = TrainerConfigSchema.parse({ ...v.over, steps: 1000 });
  return {
    ...v,
    updater: new Updater(model.layout, c, optimizerParams(c), scheduleParams(c)),
    params: initParams(model.layout, 1),
    state: createOptimizerState('adamw', model.layout.size),
    times: [] as number[],
    updateTimes: [] as number[],
    updateCpu: [] as number[],
  };
});
console.log(
  `bench:step  model=${preset} (${model.layout.size.toLocaleString('en-US')} params)  batch=${B}x${T}  backend=${backend.label} (${backend.threads} thread(s))  rounds=${rounds}`,
);
for (let r = -1; r < rounds; r++) {
  for (let q = 0; q < variants.length; q++) {
    const v = variants[(q + Math.max(0, r)) % variants.length]!;
    const t0 = performance.now();
    const { grads } = model.lossAndGrads(v.params, batch);
    const t1 = performance.now();
    const c1 = process.cpuUsage();
    v.updater.update(Math.max(0, r), v.params, grads, v.state);
    const c2 = process.cpuUsage(c1);
    const t2 = performance.now();
    if (r >= 0) {
      v.times.push(t2 - t0);
      v.updateTimes.push(t2 - t1);
      v.updateCpu.push((c2.user + c2.system) / 1000);
    }
  }
}
const sft = variants[0]!;
const sftStep = median(sft.times);
const sftCpu = median(sft.updateCpu);
const sftUpdate = median(sft.updateTimes);
const f = (x: number, w: number, d = 1): string => x.toFixed(d).padStart(w);
for (const v of variants) {
  const m = median(v.times);
  const wallOverhead = (median(v.updateTimes) - sftUpdate) / sftStep;
  const cpuOverhead = (median(v.updateCpu) - sftCpu) / sftStep;
  console.log(
    `  ${v.name.padEnd(16)} step ${f(m, 8)} ms (${f(Math.min(...v.times), 7, 0)}–${f(Math.max(...v.times), 7, 0)})   update ${f(median(v.updateTimes), 7)} ms wall ${f(median(v.updateCpu), 7)} ms cpu` +
      `   step ratio vs sft ${(m / sftStep).toFixed(3)}   GMT overhead: update wall ${f(100 * wallOverhead, 5, 2)}%, update cpu ${f(100 * cpuOverhead, 5, 2)}% of the sft step`,
  );
}
