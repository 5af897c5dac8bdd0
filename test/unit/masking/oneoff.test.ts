/** The `oneoff` baseline: magnitude drop against the sort of |delta|, and DARE (docs/architecture.md §2). */

import test from 'ava';
import { Rng } from '../../../trainer/src/rng.js';
import { NonFiniteGradientError, keepCount, oneOffDrop, type NamedTensor } from '../../../trainer/src/masking/index.js';
import { normal, reference } from './reference.js';

function pair(seed: number): { pre: NamedTensor[]; post: NamedTensor[] } {
  const rng = new Rng(seed);
  const sizes = [1000, 3, 1, 517];
  const pre = sizes.map((n, i) => ({ name: `p${i}`, values: normal(rng, n) }));
  const post = pre.map((p, i) => {
    const d = normal(rng, p.values.length, 0.01);
    if (i === 3) d.fill(0, 0, 200); // unchanged entries: heavy ties at |delta| = 0
    return { name: p.name, values: p.values.map((x, j) => x + d[j]!) };
  });
  return { pre, post };
}

for (const tieRule of ['all', 'exact'] as const) {
  for (const maskRatio of [0, 0.1, 0.5, 0.9]) {
    test(`oneoff - magnitude, ${tieRule} ties, r=${maskRatio}: resets the smallest |delta|`, (t) => {
      const { pre, post } = pair(1);
      const res = oneOffDrop(pre, post, { maskRatio, method: 'magnitude', tieRule });
      res.tensors.forEach((x, i) => {
        const p = pre[i]!.values;
        const f = post[i]!.values;
        const delta = f.map((v, j) => v - p[j]!);
        const k = keepCount(f.length, maskRatio);
        const ref = reference(delta, k);
        const keep = tieRule === 'exact' ? ref.keepExact : ref.keepAll;
        const want = f.map((v, j) => (keep[j] === 1 ? v : p[j]!));
        t.deepEqual(Array.from(x.values), Array.from(want), x.name);
        t.is(
          res.stats[i]!.kept,
          keep.reduce((a, b) => a + b, 0),
        );
        t.is(res.stats[i]!.threshold, ref.threshold);
      });
      t.is(
        res.kept,
        res.stats.reduce((a, s) => a + s.kept, 0),
      );
    });
  }
}

test('oneoff - dare drops with probability r, rescales the rest, and is seeded', (t) => {
  const { pre, post } = pair(2);
  const r = 0.3;
  const a = oneOffDrop(pre, post, { maskRatio: r, method: 'dare', seed: 4 });
  const b = oneOffDrop(pre, post, { maskRatio: r, method: 'dare', seed: 4 });
  const c = oneOffDrop(pre, post, { maskRatio: r, method: 'dare', seed: 5 });
  t.deepEqual(
    a.tensors.map((x) => Array.from(x.values)),
    b.tensors.map((x) => Array.from(x.values)),
  );
  t.notDeepEqual(
    a.tensors.map((x) => Array.from(x.values)),
    c.tensors.map((x) => Array.from(x.values)),
  );
  const x = a.tensors[0]!.values;
  const p = pre[0]!.values;
  const f = post[0]!.values;
  let dropped = 0;
  for (let j = 0; j < x.length; j++) {
    if (x[j] === p[j]) dropped++;
    else t.is(x[j], Math.fround(p[j]! + Math.fround(f[j]! - p[j]!) / (1 - r)), `entry ${j}`);
  }
  t.true(Math.abs(dropped / x.length - r) < 0.06, `dropped ${dropped}`);
  t.is(a.stats[0]!.kept, x.length - dropped);
  const none = oneOffDrop(pre, post, { maskRatio: 0, method: 'dare', seed: 1 });
  t.deepEqual(Array.from(none.tensors[0]!.values), Array.from(f));
  t.throws(() => oneOffDrop(pre, post, { maskRatio: 0.5, method: 'dare' }), { instanceOf: RangeError });
});

test('oneoff - non-finite deltas and mismatched tensors are errors', (t) => {
  const { pre, post } = pair(3);
  post[1]!.values[2] = NaN;
  for (const method of ['magnitude', 'dare'] as const) {
    const err = t.throws(() => oneOffDrop(pre, post, { maskRatio: 0.5, method, seed: 1 }), { instanceOf: NonFiniteGradientError });
    t.is(err.tensor, 'p1');
    t.is(err.index, 2);
  }
  t.throws(() => oneOffDrop(pre, post.slice(1), { maskRatio: 0.5, method: 'magnitude' }), { instanceOf: RangeError });
});
