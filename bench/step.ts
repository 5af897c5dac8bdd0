/**
 * bench:step — optimizer-step time of SFT vs GMT (r = 0.2 and 0.9, tensor and global scope) on the same model, batch and
 * backend, measured interleaved in one run (round-robin, medians), so drift hits all equally.
 * Goal: GMT overhead ≤ 3% (the paper measured GMT 6-14% slower than SFT).
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
  };
});
console.log(
  `bench:step  model=${preset} (${model.layout.size.toLocaleString('en-US')} params)  batch=${B}x${T}  backend=${backend.label} (${backend.threads} thread(s))  rounds=${rounds}`,
);
for (let r = -1; r < rounds; r++) {
  for (const v of variants) {
    const t0 = performance.now();
    const { grads } = model.lossAndGrads(v.params, batch);
    const t1 = performance.now();
    v.updater.update(Math.max(0, r), v.params, grads, v.state);
    const t2 = performance.now();
    if (r >= 0) {
      v.times.push(t2 - t0);
      v.updateTimes.push(t2 - t1);
    }
  }
}
const sft = median(variants[0]!.times);
for (const v of variants) {
  const m = median(v.times);
  console.log(
    `  ${v.name.padEnd(16)} step ${m.toFixed(1).padStart(8)} ms   update ${median(v.updateTimes).toFixed(2).padStart(7)} ms   ratio vs sft ${(m / sft).toFixed(3)}   overhead ${(100 * (m / sft - 1)).toFixed(1)}%`,
  );
}
