/**
 * The optimizer's rounding order is part of the bit-identity contract (ranks, resume and --accum-steps
 * runs compare parameter hashes), so the fast loops are checked bit for bit against a scalar
 * reference that spells the order out: moments in fp64 rounded to fp32, the parameter in fp64 from
 * fround(p·decay), stored as fp32. Covers both AdamW loops (dense and keep-mask), SGD, sub-ranges
 * with a state offset, and that masked entries and their state stay untouched.
 */
import test from 'ava';
import { type OptimizerParams, createOptimizerState, optimizerStep } from '../../../trainer/src/optim/optimizer.js';
import { Rng } from '../../../trainer/src/rng.js';
import { bitEqual } from '../../helpers/compare.js';

function referenceAdamw(
  hp: OptimizerParams,
  t: number,
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  lr: number,
  keep: Uint8Array | undefined,
  lo: number,
  hi: number,
  so: number,
): void {
  const f = Math.fround;
  for (let i = lo; i < hi; i++) {
    if (keep?.[i] === 0) continue;
    const j = i - lo + so;
    const gi = g[i]!;
    m[j] = f(hp.beta1 * m[j]! + (1 - hp.beta1) * gi);
    v[j] = f(hp.beta2 * v[j]! + (1 - hp.beta2) * gi * gi);
    const denom = Math.sqrt(v[j]) / Math.sqrt(1 - hp.beta2 ** t) + hp.eps;
    p[i] = f(p[i]! * (1 - lr * hp.weightDecay)) - ((lr / (1 - hp.beta1 ** t)) * m[j]) / denom;
  }
}

function referenceSgd(
  hp: OptimizerParams,
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  lr: number,
  keep: Uint8Array | undefined,
  lo: number,
  hi: number,
  so: number,
): void {
  for (let i = lo; i < hi; i++) {
    if (keep?.[i] === 0) continue;
    const j = i - lo + so;
    const gi = hp.weightDecay !== 0 ? g[i]! + hp.weightDecay * p[i]! : g[i]!;
    m[j] = Math.fround(hp.momentum * m[j]! + gi);
    p[i] = p[i]! - lr * m[j];
  }
}

function randomArrays(n: number, seed: number): { p: Float32Array; g: Float32Array; keep: Uint8Array } {
  const rng = new Rng(seed);
  const p = new Float32Array(n).map(() => rng.nextFloat() * 2 - 1);
  const g = new Float32Array(n).map(() => (rng.nextFloat() - 0.5) * 10 ** -Math.floor(rng.nextFloat() * 6));
  const keep = new Uint8Array(n).map(() => (rng.nextFloat() < 0.7 ? 1 : 0));
  return { p, g, keep };
}

const HP: OptimizerParams = { kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, momentum: 0.9 };

for (const kind of ['adamw', 'sgd'] as const) {
  for (const masked of [false, true]) {
    test(`optimizer - ${kind} ${masked ? 'with a keep-mask' : 'dense'} is bit-identical to the scalar reference over 4 steps, on a sub-range with a state offset`, (t) => {
      const n = 5000,
        lo = 1234,
        hi = 4321,
        so = 7;
      const hp = { ...HP, kind };
      const { p, g, keep } = randomArrays(n, masked ? 11 : 12);
      const k = masked ? keep : undefined;
      const pRef = p.slice();
      const state = createOptimizerState(kind, hi - lo + so);
      const mRef = new Float32Array(hi - lo + so),
        vRef = new Float32Array(hi - lo + so);
      const mBefore = new Float32Array(state.m.length).fill(0.25);
      state.m.set(mBefore);
      mRef.set(mBefore);
      for (let step = 1; step <= 4; step++) {
        const lr = 1e-3 * step;
        optimizerStep(hp, state, p, g, lr, k, lo, hi, so);
        if (kind === 'adamw') referenceAdamw(hp, step, pRef, g, mRef, vRef, lr, k, lo, hi, so);
        else referenceSgd(hp, pRef, g, mRef, lr, k, lo, hi, so);
      }
      t.is(state.step, 4);
      t.true(bitEqual(p, pRef), 'parameters');
      t.true(bitEqual(state.m, mRef), 'first moment / momentum');
      if (kind === 'adamw') t.true(bitEqual(state.v, vRef), 'second moment');
      // Outside [lo, hi) and (with a mask) at masked entries the parameters did not move (their state
      // started at 0.25 and is compared with the reference above, which skips them too).
      const orig = randomArrays(n, masked ? 11 : 12).p;
      for (let i = 0; i < n; i++) {
        if (i >= lo && i < hi && (k === undefined || k[i] === 1)) continue;
        if (p[i] !== orig[i]) {
          t.fail(`entry ${i} changed although outside the range or masked`);
          return;
        }
      }
    });
  }
}
