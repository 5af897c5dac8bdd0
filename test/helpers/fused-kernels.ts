/**
 * Inputs and runs of GMT's fused CPU kernels (trainer/native/gmt_ops.cc) shared by their unit test and
 * by the digest script the test runs at several thread counts (test/helpers/fused-kernels-digest.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { biasGelu, biasGeluGrad, causalSoftmax, layerNormBackward, layerNormForward, softmaxGrad } from '../../trainer/src/model/native-ops.js';
import { Rng } from '../../trainer/src/rng.js';

/** Normal(0, scale) fp32 values, seeded. */
export function normals(n: number, seed: number, scale = 1): Float32Array {
  const r = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = r.nextNormal() * scale;
  return out;
}

/** Shapes of one run: N rows of width F (GELU) and C (LayerNorm); scores [B, H, T, T]. */
export interface KernelShapes {
  readonly N: number;
  readonly F: number;
  readonly C: number;
  readonly B: number;
  readonly H: number;
  readonly T: number;
}

/** Every kernel once on seeded inputs; the outputs as host arrays, in a fixed order. */
export function runAllKernels(s: KernelShapes, seed: number): Array<{ name: string; data: Float32Array }> {
  return tf.tidy(() => {
    const u = tf.tensor2d(normals(s.N * s.F, seed, 3), [s.N, s.F]);
    const b = tf.tensor1d(normals(s.F, seed + 1));
    const dy = tf.tensor2d(normals(s.N * s.F, seed + 2), [s.N, s.F]);
    const x = tf.tensor2d(normals(s.N * s.C, seed + 3, 2), [s.N, s.C]);
    const g = tf.tensor1d(normals(s.C, seed + 4));
    const beta = tf.tensor1d(normals(s.C, seed + 5));
    const dyc = tf.tensor2d(normals(s.N * s.C, seed + 6), [s.N, s.C]);
    const scores = tf.tensor4d(normals(s.B * s.H * s.T * s.T, seed + 7, 4), [s.B, s.H, s.T, s.T]);
    const dp = tf.tensor4d(normals(s.B * s.H * s.T * s.T, seed + 8), [s.B, s.H, s.T, s.T]);
    const ln = layerNormForward(x, g, beta, 1e-5);
    const lg = layerNormBackward(dyc, x, ln.mean, ln.rstd, g);
    const p = causalSoftmax(scores);
    const out: Array<[string, tf.Tensor]> = [
      ['GmtBiasGelu', biasGelu(u, b)],
      ['GmtBiasGeluGrad', biasGeluGrad(dy, u, b)],
      ['GmtLayerNorm.y', ln.y],
      ['GmtLayerNorm.mean', ln.mean],
      ['GmtLayerNorm.rstd', ln.rstd],
      ['GmtLayerNormGrad.dx', lg.dx],
      ['GmtLayerNormGrad.dgamma', lg.dg],
      ['GmtLayerNormGrad.dbeta', lg.db],
      ['GmtCausalSoftmax', p],
      ['GmtSoftmaxGrad', softmaxGrad(p, dp)],
    ];
    return out.map(([name, t]) => ({ name, data: t.dataSync() as Float32Array }));
  });
}
