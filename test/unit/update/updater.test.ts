/**
 * GMT updates against the independent PyTorch reference (test/golden: masks from torch.sort, a
 * hand-written masked AdamW for maskMode "update", torch.optim.AdamW on the zeroed gradient for
 * "gradient"), plus the invariants of docs/architecture.md §2 on random data.
 */
import test from 'ava';
import { TrainerConfigSchema } from '../../../contract/config.js';
import { initBackend } from '../../../trainer/src/backend.js';
import { Gpt2Model } from '../../../trainer/src/model/gpt2.js';
import { computeMasks, computeRandomMasks } from '../../../trainer/src/masking/index.js';
import { createOptimizerState, optimizerStep } from '../../../trainer/src/optim/optimizer.js';
import { optimizerParams, scheduleParams } from '../../../trainer/src/update/method.js';
import { Updater } from '../../../trainer/src/update/updater.js';
import { Rng } from '../../../trainer/src/rng.js';
import { NumericError } from '../../../trainer/src/errors.js';
import { bitEqual, worstMismatch } from '../../helpers/compare.js';
import { golden, goldenBatch, goldenFlat, goldenModelConfig } from '../../helpers/golden.js';

const model = new Gpt2Model(goldenModelConfig);
const layout = model.layout;
await initBackend('wasm');

function config(over: Record<string, unknown>) {
  return TrainerConfigSchema.parse({
    method: 'gmt',
    maskRatio: 0.5,
    lr: 1e-2,
    weightDecay: 0.1,
    schedule: 'constant',
    warmupRatio: 0,
    steps: 3,
    maxGradNorm: 1,
    ...over,
  });
}

const goldenRuns = [
  { key: 'update_tensor', scope: 'tensor', mode: 'update' },
  { key: 'gradient_tensor', scope: 'tensor', mode: 'gradient' },
  { key: 'update_global', scope: 'global', mode: 'update' },
] as const;

for (const run of goldenRuns) {
  test(`update - GMT ${run.mode}/${run.scope} matches the PyTorch reference (masks exact, params within 1e-5 + 1e-4·|p|)`, async (t) => {
    const ref = golden.gmt[run.key];
    const c = config({ maskScope: run.scope, maskMode: run.mode });
    const updater = new Updater(layout, c, optimizerParams(c), scheduleParams(c));
    const params = await goldenFlat('tiny-init.safetensors');
    const state = createOptimizerState('adamw', params.length);
    (['A', 'B', 'A'] as const).forEach((b, step) => {
      const { loss, grads } = model.lossAndGrads(params, goldenBatch(b));
      const expectedLoss = ref.losses_before_step[step]!;
      t.true(Math.abs(loss - expectedLoss) <= 1e-6 + 1e-5 * Math.abs(expectedLoss), `step ${step} loss ${loss} vs ${expectedLoss}`);
      const r = updater.update(step, params, grads, state);
      const keptRef = ref.kept_per_step[step]!;
      for (const s of r.masks!.tensors) t.is(s.kept, keptRef[s.name] ?? -1, `step ${step} ${s.name} kept`);
    });
    const w = worstMismatch(params, await goldenFlat(ref.file), 1e-5, 1e-4);
    t.is(w, undefined, JSON.stringify(w));
  });
}

function randomCase(seed: number, n: number) {
  const rng = new Rng(seed);
  const params = new Float32Array(layout.size).map(() => rng.nextNormal());
  const grad = new Float32Array(layout.size).map(() => rng.nextNormal() * 0.01);
  for (let i = 0; i < n; i++) grad[rng.nextInt(grad.length)] = 0; // exact zeros and ties
  return { params, grad };
}

/** Γ clipped as the update clips it (fp32 product with fround(coef)), and its GMT keep-mask from computeMasks. */
function referenceKeep(grad: Float32Array, clipCoef: number, c: ReturnType<typeof config>): { clipped: Float32Array; keep: Uint8Array } {
  const f = Math.fround(clipCoef);
  const clipped = grad.map((x) => x * f);
  const set = computeMasks(
    layout.slots.map((s) => ({ name: s.name, values: clipped.subarray(s.offset, s.offset + s.size) })),
    { maskRatio: c.maskRatio, scope: c.maskScope, tieRule: c.tieRule },
  );
  const keep = new Uint8Array(layout.size);
  layout.slots.forEach((s, i) => keep.set(set.masks[i]!, s.offset));
  return { clipped, keep };
}

for (const scope of ['tensor', 'global'] as const) {
  for (const tieRule of ['all', 'exact'] as const) {
    test(`update - fused GMT (clip in the selection, mask in AdamW) is bit-identical to clip → computeMasks → masked optimizerStep (${scope}, ${tieRule})`, (t) => {
      for (const maskRatio of [0.2, 0.9]) {
        const c = config({ maskRatio, maskScope: scope, tieRule, maxGradNorm: 0.5 });
        const updater = new Updater(layout, c, optimizerParams(c), scheduleParams(c));
        const { params, grad } = randomCase(20, 3000); // many exact zeros: ties at T_k when r is large
        // Duplicated magnitudes with both signs, so ties also fall above zero.
        for (let i = 0; i + 1 < grad.length; i += 97) grad[i + 1] = -grad[i]!;
        const p1 = params.slice(),
          s1 = createOptimizerState('adamw', p1.length);
        s1.m.fill(0.125);
        s1.v.fill(0.5);
        const p2 = p1.slice(),
          s2 = createOptimizerState('adamw', p2.length);
        s2.m.fill(0.125);
        s2.v.fill(0.5);
        const g1 = grad.slice();
        const r = updater.update(0, p1, g1, s1);
        t.true(r.clipCoef < 1, 'the case clips');
        const { clipped, keep } = referenceKeep(grad, r.clipCoef, c);
        t.true(bitEqual(g1, clipped), 'Γ clipped in place as scaleInPlace does');
        optimizerStep(optimizerParams(c), s2, p2, clipped, c.lr, keep);
        t.true(bitEqual(p1, p2), `parameters, r=${maskRatio}`);
        t.true(bitEqual(s1.m, s2.m) && bitEqual(s1.v, s2.v), `moments, r=${maskRatio}`);
        t.is(s1.step, s2.step);
        let kept = 0;
        for (const k of keep) kept += k;
        t.is(r.kept, kept, 'kept count from the fused loop');
        layout.slots.forEach((s, i) => {
          let k = 0;
          for (let j = s.offset; j < s.offset + s.size; j++) k += keep[j]!;
          t.is(r.masks!.tensors[i]!.kept, k, s.name);
        });
      }
    });
  }
}

test('update - maskMode update leaves masked parameters and their optimizer state bit-identical', (t) => {
  const c = config({ maskRatio: 0.7, optimizer: 'adamw' });
  const updater = new Updater(layout, c, optimizerParams(c), scheduleParams(c));
  const { params, grad } = randomCase(1, 500);
  const state = createOptimizerState('adamw', params.length);
  // Warm the state so that untouched moments are non-zero.
  state.m.fill(0.25);
  state.v.fill(0.5);
  const before = { p: params.slice(), m: state.m.slice(), v: state.v.slice() };
  const r = updater.update(0, params, grad.slice(), state);
  const { keep } = referenceKeep(grad, r.clipCoef, c);
  let masked = 0,
    moved = 0;
  for (let i = 0; i < keep.length; i++) {
    if (keep[i] === 0) {
      masked++;
      if (!Object.is(params[i], before.p[i]) || state.m[i] !== before.m[i] || state.v[i] !== before.v[i]) moved++;
    }
  }
  t.true(masked > 0.6 * layout.size);
  t.is(moved, 0);
  t.true(r.kept >= Math.ceil(0.3 * layout.size) - layout.slots.length);
});

test('update - maskMode gradient equals "zero the masked gradient, then plain AdamW"', (t) => {
  const c = config({ maskRatio: 0.4, maskMode: 'gradient' });
  const { params, grad } = randomCase(2, 100);
  const p1 = params.slice(),
    s1 = createOptimizerState('adamw', p1.length);
  const r = new Updater(layout, c, optimizerParams(c), scheduleParams(c)).update(0, p1, grad.slice(), s1);
  const { keep } = referenceKeep(grad, r.clipCoef, c);
  // Reference: clip, zero masked entries, dense AdamW.
  const g2 = grad.slice();
  let ss = 0;
  for (const x of g2) ss += x * x;
  const coef = Math.min(1, 1 / (Math.sqrt(ss) + 1e-6));
  for (let i = 0; i < g2.length; i++) g2[i] = keep[i] ? g2[i]! * Math.fround(coef) : 0;
  const p2 = params.slice(),
    s2 = createOptimizerState('adamw', p2.length);
  optimizerStep(optimizerParams(c), s2, p2, g2, c.lr, undefined);
  t.true(bitEqual(p1, p2));
  t.true(bitEqual(s1.m, s2.m) && bitEqual(s1.v, s2.v));
  // Weight decay still moves masked parameters in this mode.
  let maskedMoved = 0;
  for (let i = 0; i < keep.length; i++) if (!keep[i] && p1[i] !== params[i]) maskedMoved++;
  t.true(maskedMoved > 0);
});

test('update - NaN or Inf in the gradient skips the step (nothing changes) or raises NumericError', (t) => {
  for (const bad of [NaN, Infinity, -Infinity]) {
    const { params, grad } = randomCase(3, 0);
    grad[layout.slot('transformer.h.1.mlp.c_fc.weight').offset + 5] = bad;
    const skip = config({ nonFinite: 'skip' });
    const state = createOptimizerState('adamw', params.length);
    const before = params.slice();
    const r = new Updater(layout, skip, optimizerParams(skip), scheduleParams(skip)).update(0, params, grad, state);
    t.false(r.applied);
    t.regex(r.skipReason ?? '', /transformer\.h\.1\.mlp\.c_fc\.weight\[5\]/);
    t.true(bitEqual(params, before));
    t.is(state.step, 0);
    const strict = config({ nonFinite: 'error' });
    const err = t.throws(() => new Updater(layout, strict, optimizerParams(strict), scheduleParams(strict)).update(0, params, grad, state));
    t.true(err instanceof NumericError);
    t.regex(err.message, /c_fc\.weight\[5\]/);
  }
});

test('update - HFT freezes a fixed half by category: frozen tensors never move', (t) => {
  const c = config({ method: 'hft' });
  const updater = new Updater(layout, c, optimizerParams(c), scheduleParams(c));
  const { params, grad } = randomCase(4, 0);
  const before = params.slice();
  const state = createOptimizerState('adamw', params.length);
  const r = updater.update(0, params, grad, state);
  let frozenTensors = 0;
  for (const s of layout.slots) {
    const moved = params.subarray(s.offset, s.offset + s.size).some((x, i) => x !== before[s.offset + i]);
    if (!moved) frozenTensors++;
    if (s.kind === 'embedding' || s.name.startsWith('transformer.ln_f')) t.true(moved, `${s.name} must stay trainable`);
  }
  t.is(frozenTensors, goldenModelConfig.nLayer * 6); // per block: 1 attention matrix + bias, 1 MLP matrix + bias, 1 norm (2 tensors)
  t.true(r.keptRatio > 0.2 && r.keptRatio < 0.8);
});

test('update - random mask keeps exactly k per tensor and differs between steps', (t) => {
  const c = config({ method: 'random', maskRatio: 0.5 });
  const updater = new Updater(layout, c, optimizerParams(c), scheduleParams(c));
  const { params, grad } = randomCase(5, 0);
  const p0 = params.slice(),
    p1 = params.slice();
  const r0 = updater.update(0, p0, grad.slice(), createOptimizerState('adamw', params.length));
  const r1 = updater.update(1, p1, grad.slice(), createOptimizerState('adamw', params.length));
  for (const s of r0.masks!.tensors) t.is(s.kept, Math.ceil(0.5 * s.size));
  // The entries each step moved are its random mask (maskMode update), and they differ between steps.
  const tensors = layout.slots.map((s) => ({ name: s.name, size: s.size }));
  const s4 = layout.slots[4]!;
  const moved = (p: Float32Array) => Array.from(p.subarray(s4.offset, s4.offset + s4.size), (x, i) => (x !== params[s4.offset + i] ? 1 : 0));
  const maskAt = (step: number) => Array.from(computeRandomMasks(tensors, { seed: c.seed, step, maskRatio: c.maskRatio, scope: c.maskScope }).masks[4]!);
  t.deepEqual(moved(p0), maskAt(0));
  t.deepEqual(moved(p1), maskAt(1));
  t.notDeepEqual(moved(p0), moved(p1));
  t.is(r1.kept, r0.kept);
});
