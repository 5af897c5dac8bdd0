/** Masks per tensor and global scope, stats, and applying a mask (docs/architecture.md §2). */

import test from 'ava';
import { Rng } from '../../../trainer/src/rng.js';
import { NonFiniteGradientError, applyMaskInPlace, computeMasks, keepCount, type MaskOptions, type NamedTensor } from '../../../trainer/src/masking/index.js';
import { concat, firstDiff, normal, pick, reference } from './reference.js';

function tensors(rng: Rng): NamedTensor[] {
  return [
    { name: 'transformer.wte.weight', values: normal(rng, 5000, 0.01) },
    { name: 'transformer.h.0.ln_1.bias', values: normal(rng, 7, 1) },
    { name: 'transformer.h.0.attn.c_attn.weight', values: pick(rng, 3001, [0, 1e-3, 2e-3, 2e-3]) },
    { name: 'transformer.h.0.empty', values: new Float32Array(0) },
    { name: 'transformer.ln_f.weight', values: normal(rng, 1, 3) },
  ];
}

const OPTIONS: readonly MaskOptions[] = [0.1, 0.5, 0.95].flatMap((maskRatio) =>
  (['tensor', 'global'] as const).flatMap((scope) => (['all', 'exact'] as const).map((tieRule) => ({ maskRatio, scope, tieRule }))),
);

for (const o of OPTIONS) {
  test(`mask - ${o.scope} scope, ${o.tieRule} ties, r=${o.maskRatio} matches the full sort`, (t) => {
    const ts = tensors(new Rng(3));
    const set = computeMasks(ts, o);
    t.is(set.masks.length, ts.length);
    if (o.scope === 'tensor') {
      ts.forEach((x, i) => {
        const k = keepCount(x.values.length, o.maskRatio);
        const ref = reference(x.values, k);
        const want = o.tieRule === 'exact' ? ref.keepExact : ref.keepAll;
        t.is(firstDiff(set.masks[i]!, want), -1, x.name);
        t.is(
          set.tensors[i]!.kept,
          want.reduce((a, b) => a + b, 0),
        );
        t.is(set.tensors[i]!.threshold, ref.threshold);
        if (o.tieRule === 'exact') t.is(set.tensors[i]!.kept, k);
      });
      t.is(set.scopes.length, ts.length);
    } else {
      const all = Float32Array.from(ts.flatMap((x) => Array.from(x.values)));
      const k = keepCount(all.length, o.maskRatio);
      const ref = reference(all, k);
      const want = o.tieRule === 'exact' ? ref.keepExact : ref.keepAll;
      t.is(firstDiff(concat(set.masks), want), -1);
      t.is(set.scopes.length, 1);
      t.is(set.scopes[0]!.scope, 'global');
      t.is(set.scopes[0]!.k, k);
      t.is(set.scopes[0]!.threshold, ref.threshold);
      t.true(set.tensors.every((s) => s.threshold === ref.threshold));
      if (o.tieRule === 'exact') t.is(set.kept, k);
    }
    t.is(
      set.kept,
      set.tensors.reduce((a, s) => a + s.kept, 0),
    );
    t.is(
      set.size,
      ts.reduce((a, x) => a + x.values.length, 0),
    );
    t.is(set.keptRatio, set.kept / set.size);
    t.true(set.kept >= set.scopes.reduce((a, s) => a + s.k, 0));
  });
}

test('mask - ties rule keeps every tie, so kept may exceed k', (t) => {
  const values = Float32Array.from([1, 1, 1, 1, 0.5]);
  const set = computeMasks([{ name: 'x', values }], { maskRatio: 0.5, scope: 'tensor', tieRule: 'all' });
  t.is(set.scopes[0]!.k, 3);
  t.is(set.kept, 4);
  t.is(set.tensors[0]!.keptRatio, 0.8);
});

test('mask - applyMaskInPlace zeroes dropped entries and leaves kept ones bit-identical', (t) => {
  const grad = Float32Array.from([-1.5, 2, -0, 3e-42, 7, -8]);
  const before = Float32Array.from(grad);
  applyMaskInPlace(grad, Uint8Array.from([1, 0, 1, 1, 0, 1]));
  t.deepEqual(
    Array.from(grad),
    [-1.5, 0, -0, 3e-42, 0, -8].map((x) => Math.fround(x)),
  );
  t.true(Object.is(grad[1], 0) && Object.is(grad[2], before[2]));
  t.throws(() => applyMaskInPlace(grad, new Uint8Array(2)), { instanceOf: RangeError });
});

test('mask - NaN under global scope names the tensor and its own flat index', (t) => {
  const ts = tensors(new Rng(4));
  ts[2]!.values[1234] = NaN;
  const err = t.throws(() => computeMasks(ts, { maskRatio: 0.1, scope: 'global', tieRule: 'all' }), {
    instanceOf: NonFiniteGradientError,
  });
  t.is(err.tensor, 'transformer.h.0.attn.c_attn.weight');
  t.is(err.index, 1234);
  t.is(err.scope, 'global');
  const err2 = t.throws(() => computeMasks(ts, { maskRatio: 0.1, scope: 'tensor', tieRule: 'all' }), {
    instanceOf: NonFiniteGradientError,
  });
  t.is(err2.scope, 'transformer.h.0.attn.c_attn.weight');
});
