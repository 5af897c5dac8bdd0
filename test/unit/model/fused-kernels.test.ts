/**
 * GMT's fused CPU kernels (trainer/native/gmt_ops.cc) against float64 references written out here
 * from their definitions, their shape errors, and their determinism: bit-identical results run to run
 * and at 1, 2 and 3 TensorFlow threads (each in its own process). The whole model with and without
 * them is checked against PyTorch in golden.test.ts.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, nativeBuilt } from '../../../trainer/src/backend.js';
import { biasGelu, biasGeluGrad, causalSoftmax, layerNormBackward, layerNormForward, softmaxGrad } from '../../../trainer/src/model/native-ops.js';
import { worstMismatch } from '../../helpers/compare.js';
import { normals, runAllKernels } from '../../helpers/fused-kernels.js';
import { repoPath } from '../../helpers/repo.js';

const info = nativeBuilt() ? await initBackend('tensorflow') : undefined;

// GELU constants as trainer/src/model/gpt2.ts defines them (x·σ(x·(a + b·x²)), tanh form).
const C = Math.sqrt(2 / Math.PI),
  A = 2 * C,
  Bc = 2 * C * 0.044715;

const N = 130,
  F = 72,
  CC = 48,
  T = 33;

function host(t: tf.Tensor): Float32Array {
  return t.dataSync() as Float32Array;
}

function close(t: import('ava').ExecutionContext, label: string, actual: Float32Array, expected: Float64Array, atol: number, rtol: number): void {
  const w = worstMismatch(actual, Float32Array.from(expected), atol, rtol);
  t.is(w, undefined, `${label}: ${JSON.stringify(w)}`);
}

test.serial('fused kernels - load with the native CPU backend once setup:native has built it', (t) => {
  t.true(nativeBuilt(), 'the native backend is not built: run `npm run setup:native`');
  t.true(info?.fusedKernels === true, info?.fusedKernelsReason ?? 'no backend');
  t.log(info?.fusedKernelsReason ?? '');
});

test.serial('fused kernels - bias + GELU and its gradient match float64 references', (t) => {
  const u = normals(N * F, 1, 3),
    b = normals(F, 2),
    dy = normals(N * F, 3);
  const yRef = new Float64Array(N * F),
    dRef = new Float64Array(N * F);
  for (let i = 0; i < N * F; i++) {
    const p = Math.fround(u[i]! + b[i % F]!);
    const s = 1 / (1 + Math.exp(-p * (A + Bc * p * p)));
    yRef[i] = p * s;
    dRef[i] = dy[i]! * (s + p * s * (1 - s) * (A + 3 * Bc * p * p));
  }
  tf.tidy(() => {
    const ut = tf.tensor2d(u, [N, F]),
      bt = tf.tensor1d(b);
    close(t, 'GmtBiasGelu', host(biasGelu(ut, bt)), yRef, 1e-6, 2e-5);
    close(t, 'GmtBiasGeluGrad', host(biasGeluGrad(tf.tensor2d(dy, [N, F]), ut, bt)), dRef, 1e-6, 2e-5);
  });
});

test.serial('fused kernels - LayerNorm forward and backward match float64 references', (t) => {
  const x = normals(N * CC, 4, 2),
    g = normals(CC, 5),
    be = normals(CC, 6),
    dy = normals(N * CC, 7);
  const eps = 1e-5;
  const y = new Float64Array(N * CC),
    mean = new Float64Array(N),
    rstd = new Float64Array(N),
    dx = new Float64Array(N * CC),
    dg = new Float64Array(CC),
    db = new Float64Array(CC);
  for (let r = 0; r < N; r++) {
    let m = 0;
    for (let c = 0; c < CC; c++) m += x[r * CC + c]!;
    m /= CC;
    let v = 0;
    for (let c = 0; c < CC; c++) v += (x[r * CC + c]! - m) ** 2;
    const rs = 1 / Math.sqrt(v / CC + eps);
    mean[r] = m;
    rstd[r] = rs;
    let m1 = 0,
      m2 = 0;
    for (let c = 0; c < CC; c++) {
      const xh = (x[r * CC + c]! - m) * rs,
        dxh = dy[r * CC + c]! * g[c]!;
      y[r * CC + c] = xh * g[c]! + be[c]!;
      m1 += dxh / CC;
      m2 += (dxh * xh) / CC;
      dg[c]! += dy[r * CC + c]! * xh;
      db[c]! += dy[r * CC + c]!;
    }
    for (let c = 0; c < CC; c++) {
      const xh = (x[r * CC + c]! - m) * rs;
      dx[r * CC + c] = rs * (dy[r * CC + c]! * g[c]! - m1 - xh * m2);
    }
  }
  tf.tidy(() => {
    const xt = tf.tensor2d(x, [N, CC]),
      gt = tf.tensor1d(g);
    const f = layerNormForward(xt, gt, tf.tensor1d(be), eps);
    close(t, 'GmtLayerNorm.y', host(f.y), y, 1e-5, 1e-5);
    close(t, 'GmtLayerNorm.mean', host(f.mean), mean, 1e-6, 1e-5);
    close(t, 'GmtLayerNorm.rstd', host(f.rstd), rstd, 1e-6, 1e-5);
    const bwd = layerNormBackward(tf.tensor2d(dy, [N, CC]), xt, f.mean, f.rstd, gt);
    close(t, 'GmtLayerNormGrad.dx', host(bwd.dx), dx, 1e-5, 1e-4);
    close(t, 'GmtLayerNormGrad.dgamma', host(bwd.dg), dg, 1e-4, 1e-4);
    close(t, 'GmtLayerNormGrad.dbeta', host(bwd.db), db, 1e-4, 1e-4);
  });
});

test.serial('fused kernels - causal softmax ignores everything above the diagonal and matches float64; its gradient too', (t) => {
  const rows = 2 * T;
  const s = normals(rows * T, 8, 6),
    dp = normals(rows * T, 9);
  for (let r = 0; r < rows; r++) for (let j = (r % T) + 1; j < T; j++) s[r * T + j] = j % 2 === 0 ? NaN : 1e30; // must not leak in
  const p = new Float64Array(rows * T),
    ds = new Float64Array(rows * T);
  for (let r = 0; r < rows; r++) {
    const k = (r % T) + 1;
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, s[r * T + j]!);
    let z = 0;
    for (let j = 0; j < k; j++) z += Math.exp(s[r * T + j]! - m);
    for (let j = 0; j < k; j++) p[r * T + j] = Math.exp(s[r * T + j]! - m) / z;
  }
  const pt = tf.tidy(() => causalSoftmax(tf.tensor3d(s, [2, T, T])));
  const pf = host(pt);
  close(t, 'GmtCausalSoftmax', pf, p, 1e-6, 1e-5);
  t.true(
    pf.every((v, i) => (i % T > Math.floor(i / T) % T ? v === 0 : Number.isFinite(v))),
    'above the diagonal exactly 0, finite below',
  );
  for (let r = 0; r < rows; r++) {
    let d = 0;
    for (let j = 0; j < T; j++) d += pf[r * T + j]! * dp[r * T + j]!;
    for (let j = 0; j < T; j++) ds[r * T + j] = pf[r * T + j]! * (dp[r * T + j]! - d);
  }
  tf.tidy(() => close(t, 'GmtSoftmaxGrad', host(softmaxGrad(pt, tf.tensor3d(dp, [2, T, T]))), ds, 1e-6, 1e-5));
  pt.dispose();
});

test.serial('fused kernels - a wrong shape is refused with the op, the input and both shapes named', (t) => {
  tf.tidy(() => {
    t.throws(() => biasGelu(tf.zeros([4, 8]), tf.zeros([7])), { message: /GmtBiasGelu: b must be a vector \[8\], got shape \[7\]/ });
    t.throws(() => biasGeluGrad(tf.zeros([4, 8]), tf.zeros([4, 9]), tf.zeros([9])), {
      message: /GmtBiasGeluGrad: dy and u: shapes \[4,8\] and \[4,9\] differ/,
    });
    t.throws(() => layerNormForward(tf.zeros([3, 5]), tf.zeros([5]), tf.zeros([4]), 1e-5), {
      message: /GmtLayerNorm: beta must be a vector \[5\], got shape \[4\]/,
    });
    t.throws(() => layerNormBackward(tf.zeros([3, 5]), tf.zeros([3, 5]), tf.zeros([2]), tf.zeros([3]), tf.zeros([5])), {
      message: /GmtLayerNormGrad: mean must be a vector \[3\], got shape \[2\]/,
    });
    t.throws(() => causalSoftmax(tf.zeros([2, 3, 4])), { message: /GmtCausalSoftmax: scores must be \[\.\.\., T, T\], got shape \[2,3,4\]/ });
    t.throws(() => softmaxGrad(tf.zeros([2, 3]), tf.zeros([3, 2])), { message: /GmtSoftmaxGrad: p and dp: shapes \[2,3\] and \[3,2\] differ/ });
  });
});

test.serial('fused kernels - bit-identical run to run', (t) => {
  const shapes = { N: 203, F: 96, C: 80, B: 2, H: 3, T: 37 };
  const a = runAllKernels(shapes, 11),
    b = runAllKernels(shapes, 11);
  a.forEach((o, i) => t.deepEqual(o.data, b[i]!.data, o.name));
});

test('fused kernels - bit-identical at 1, 2 and 3 TensorFlow threads', (t) => {
  // The thread count comes from argv only: TensorFlow's own variables, if set here, would win.
  const drop = new Set(['TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS', 'OMP_NUM_THREADS']);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !drop.has(k)));
  const runs = [1, 2, 3].map((n) => {
    const r = spawnSync(process.execPath, [repoPath('dist', 'test', 'helpers', 'fused-kernels-digest.js'), String(n)], {
      encoding: 'utf8',
      env,
      timeout: 120_000,
    });
    if (r.status !== 0) throw new Error(`digest at ${n} thread(s) exited ${String(r.status ?? r.signal)}: ${r.stderr.slice(-2000)}`);
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { threads: number; fusedKernels: boolean; digests: Record<string, string> };
  });
  t.deepEqual(
    runs.map((r) => [r.threads, r.fusedKernels]),
    [
      [1, true],
      [2, true],
      [3, true],
    ],
  );
  t.is(Object.keys(runs[0]!.digests).length, 10);
  t.deepEqual(runs[1]!.digests, runs[0]!.digests, '2 threads vs 1');
  t.deepEqual(runs[2]!.digests, runs[0]!.digests, '3 threads vs 1');
});
