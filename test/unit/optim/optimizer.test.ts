/**
 * The optimizer's rounding order is part of the bit-identity contract (ranks, resume and --accum-steps
 * runs compare parameter hashes), so the fast loops are checked bit for bit against a scalar
 * reference that spells the order out: moments in fp64 rounded to fp32, the parameter in fp64 from
 * fround(p·decay), stored as fp32. Covers both AdamW loops (dense and keep-mask), SGD, sub-ranges
 * with a state offset, and that masked entries and their state stay untouched.
 */
import test from 'ava';
import { type OptimizerParams, type ThresholdRange, adamwStepThreshold, createOptimizerState, optimizerStep } from '../../../trainer/src/optim/optimizer.js';
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

/** The keep rule spelled out: bits > T, plus bits == T for every tie or for the first `quota` in index order. */
function referenceThresholdKeep(g: Float32Array, ranges: readonly ThresholdRange[]): Uint8Array {
  const u = new Uint32Array(g.buffer, g.byteOffset, g.length);
  const keep = new Uint8Array(g.length);
  for (const r of ranges) {
    let quota = r.tieQuota ?? Infinity;
    for (let i = r.lo; i < r.hi; i++) {
      const x = u[i]! & 0x7fffffff;
      if (x > r.thresholdBits) keep[i] = 1;
      else if (x === r.thresholdBits && quota > 0) {
        keep[i] = 1;
        quota--;
      }
    }
  }
  return keep;
}

test('optimizer - adamwStepThreshold (keep rule inside the loop) is bit-identical to the scalar reference with the same mask, both tie rules', (t) => {
  const n = 6000;
  const { p, g } = randomArrays(n, 13);
  for (let i = 0; i < n; i += 7) g[i] = 0; // exact zeros: ties at T = 0
  for (let i = 1; i + 1 < n; i += 11) g[i + 1] = -g[i]!; // equal magnitudes of both signs
  const bitsOf = (x: number) => new Uint32Array(new Float32Array([Math.abs(x)]).buffer)[0]!;
  const ranges: ThresholdRange[] = [
    { lo: 0, hi: 1000, thresholdBits: 0, tieQuota: undefined }, // keeps everything
    { lo: 1000, hi: 2500, thresholdBits: 0, tieQuota: 40 }, // ties at zero, first 40 kept
    { lo: 2500, hi: 4000, thresholdBits: bitsOf(g[2600]!), tieQuota: undefined },
    { lo: 4000, hi: 5000, thresholdBits: bitsOf(g[4400]!), tieQuota: 1 },
    { lo: 5000, hi: 5500, thresholdBits: 0x80000000, tieQuota: undefined }, // keeps nothing
    { lo: 5500, hi: 6000, thresholdBits: bitsOf(g[5700]!), tieQuota: 0 },
  ];
  const keep = referenceThresholdKeep(g, ranges);
  const state = createOptimizerState('adamw', n);
  state.m.fill(0.25);
  state.v.fill(0.125);
  const pRef = p.slice(),
    mRef = state.m.slice(),
    vRef = state.v.slice();
  for (let step = 1; step <= 3; step++) {
    const lr = 1e-3 * step;
    const kept = adamwStepThreshold(HP, state, p, g, lr, ranges);
    referenceAdamw(HP, step, pRef, g, mRef, vRef, lr, keep, 0, n, 0);
    t.deepEqual(
      kept,
      ranges.map((r) => keep.subarray(r.lo, r.hi).reduce((a, b) => a + b, 0)),
    );
  }
  t.is(state.step, 3);
  t.true(bitEqual(p, pRef), 'parameters');
  t.true(bitEqual(state.m, mRef) && bitEqual(state.v, vRef), 'moments');
  const kept1 = keep.subarray(1000, 2500).reduce((a, b) => a + b, 0);
  t.true(kept1 > 40 && kept1 < 1500, 'the quota range keeps its non-zero entries and 40 zeros');
});
