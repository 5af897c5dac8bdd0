/**
 * bench:mfu — training model-FLOPs utilisation: achieved FLOP/s (PaLM-style 6N + 12·L·T·C FLOPs per
 * token, forward + backward) over the same backend's matmul peak, measured in the same run as the
 * best of square fp32 matmuls of several sizes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../trainer/src/backend.js';
import { MODEL_PRESETS, type ModelPreset, trainFlopsPerToken } from '../trainer/src/model/config.js';
import { Gpt2Model } from '../trainer/src/model/gpt2.js';
import { initParams } from '../trainer/src/model/init.js';
import { median, randomBatch } from './common.js';

const backend = await initBackend((process.env['BENCH_BACKEND'] ?? 'auto') as 'auto');
function matmulPeak(): { flops: number; size: number } {
  let best = { flops: 0, size: 0 };
  for (const n of [256, 512, 768, 1024]) {
    const a = tf.randomNormal([n, n]),
      b = tf.randomNormal([n, n]);
    tf.matMul(a, b).dispose();
    const reps = Math.max(2, Math.round(4e9 / (2 * n ** 3)));
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) {
      const c = tf.matMul(a, b);
      c.dataSync();
      c.dispose();
    }
    const f = (2 * n ** 3 * reps) / ((performance.now() - t0) / 1000);
    if (f > best.flops) best = { flops: f, size: n };
    a.dispose();
    b.dispose();
  }
  return best;
}
const peak = matmulPeak();
console.log(`bench:mfu  backend=${backend.name}  matmul peak ${(peak.flops / 1e9).toFixed(2)} GFLOP/s (fp32 ${peak.size}³)`);
const presets = (process.env['BENCH_MODELS'] ?? 'tiny,small').split(',') as ModelPreset[];
for (const preset of presets) {
  const cfg = MODEL_PRESETS[preset];
  const model = new Gpt2Model(cfg);
  const params = initParams(model.layout, 1);
  const T = Math.min(cfg.nPositions, 128),
    B = Number(process.env['BENCH_BATCH'] ?? 16);
  const batch = randomBatch(cfg.vocabSize, B, T);
  model.lossAndGrads(params, batch);
  const times: number[] = [];
  for (let i = 0; i < 4; i++) {
    const t0 = performance.now();
    model.lossAndGrads(params, batch);
    times.push((performance.now() - t0) / 1000);
  }
  const s = median(times);
  const achieved = (trainFlopsPerToken(cfg, T) * B * T) / s;
  console.log(
    `  ${preset.padEnd(6)} ${model.layout.size.toLocaleString('en-US').padStart(10)} params  batch ${B}x${T}  step ${(s * 1000).toFixed(0)} ms  ${(achieved / 1e9).toFixed(2)} GFLOP/s  MFU ${((100 * achieved) / peak.flops).toFixed(1)}% of measured matmul peak`,
  );
}
