/** Radix select against an independent full-sort reference (docs/architecture.md §2: equal to a sort, ties included). */

import test, { type ExecutionContext } from 'ava';
import { Rng } from '../../../trainer/src/rng.js';
import {
  NonFiniteGradientError,
  advance,
  computeMask,
  countKept,
  createSelectState,
  findNonFinite,
  histogram,
  histogramAndCompact,
  keepCount,
  passSpec,
  selectThreshold,
  sumHistograms,
  tieQuotas,
  type RadixSelectState,
} from '../../../trainer/src/masking/index.js';
import { anyFinite, concat, firstDiff, fromBits, normal, pick, reference, sortedOrder, split } from './reference.js';

const RATIOS = [0, 0.1, 0.2, 0.4, 0.5, 0.9, 0.95, 0.99, 0.999999, 1 - 2 ** -53];

/** Drive the state machine by hand with plain per-segment histograms, as a collective would. */
function collectiveSelect(segments: readonly Float32Array[], k: number): RadixSelectState {
  const n = segments.reduce((a, s) => a + s.length, 0);
  let state: RadixSelectState = createSelectState(n, k);
  while (state.status === 'running') {
    const spec = passSpec(state);
    state = advance(
      state,
      sumHistograms(
        segments.map((s) => histogram(s, spec)),
        spec.bins,
      ),
    );
  }
  return state;
}

/** Compare select, both tie rules and a random segmentation with the full sort, for every ratio. */
function checkAllRatios(t: ExecutionContext, values: Float32Array, rng: Rng): void {
  const sorted = sortedOrder(values);
  const n = values.length;
  for (const r of RATIOS) {
    const k = keepCount(n, r);
    const ref = reference(values, k, sorted);
    const at = `r=${r} n=${n} k=${k}`;
    const sel = selectThreshold(values, k);
    t.is(sel.threshold, ref.threshold, `threshold ${at}`);
    t.is(sel.countAbove, ref.countAbove, `countAbove ${at}`);
    t.is(sel.countEqual, ref.countEqual, `countEqual ${at}`);
    t.is(firstDiff(computeMask(values, sel.thresholdBits), ref.keepAll), -1, `ties-all mask ${at}`);
    const exact = computeMask(values, sel.thresholdBits, sel.quotas[0]);
    t.is(firstDiff(exact, ref.keepExact), -1, `exact mask ${at}`);
    t.is(countKept(exact), k, `exact keeps k ${at}`);

    const parts = split(rng, values, 1 + rng.nextInt(5));
    const seg = selectThreshold(parts, k);
    t.is(seg.thresholdBits, sel.thresholdBits, `segmented threshold ${at} (${parts.length} parts)`);
    t.is(seg.countAbove, sel.countAbove, `segmented countAbove ${at}`);
    t.is(seg.countEqual, sel.countEqual, `segmented countEqual ${at}`);
    const segAll = concat(parts.map((p) => computeMask(p, seg.thresholdBits)));
    const segExact = concat(parts.map((p, j) => computeMask(p, seg.thresholdBits, seg.quotas[j])));
    t.is(firstDiff(segAll, ref.keepAll), -1, `segmented ties-all mask ${at}`);
    t.is(firstDiff(segExact, ref.keepExact), -1, `segmented exact mask ${at}`);

    if (k > 0) {
      const coll = collectiveSelect(parts, k);
      t.is(coll.status, 'done');
      if (coll.status === 'done') t.is(coll.thresholdBits, sel.thresholdBits, `state machine ${at}`);
    }
  }
}

const NORMAL_SIZES = [1, 2, 7, 1000, 100003];
for (const n of NORMAL_SIZES) {
  test(`select - matches full sort on normal data, n=${n}`, (t) => {
    const rng = new Rng(1000 + n);
    checkAllRatios(t, normal(rng, n), rng);
  });
}

const MIN_DENORMAL = 1e-45; // rounds to 2^-149, the smallest float32 denormal
const ADVERSARIAL: readonly { name: string; make: (rng: Rng) => Float32Array }[] = [
  { name: 'all equal, mixed signs', make: (rng) => pick(rng, 1000, [0.5]) },
  { name: 'many ties at the threshold', make: (rng) => pick(rng, 2001, [0, 1e-3, 1, 1, 2]) },
  { name: 'all zeros', make: () => new Float32Array(513) },
  { name: '+0 and -0 mixed', make: (rng) => pick(rng, 999, [0]) },
  { name: '+0/-0 with a few nonzeros', make: (rng) => pick(rng, 999, [0, 0, 0, 0, 0, 0, 0, 0, 0, 3e-5]) },
  { name: 'denormals', make: (rng) => pick(rng, 1500, [1e-42, MIN_DENORMAL, 2 * MIN_DENORMAL, 0, 1e-38, 1.1754942e-38]) },
  { name: 'huge values', make: (rng) => pick(rng, 1200, [3.4028234e38, 1e38, 3.4028232e38, 1, 0]) },
  {
    name: 'values differing in the last bit',
    make: (rng) => fromBits(Array.from({ length: 1700 }, () => (0x3f800000 + rng.nextInt(4) + (rng.nextU32() & 0x80000000)) >>> 0)),
  },
  {
    name: 'differing only in the middle bits',
    make: (rng) => fromBits(Array.from({ length: 1700 }, () => 0x3f800000 + (rng.nextInt(8) << 10) + (rng.nextInt(2) << 20))),
  },
  { name: 'any finite bit pattern', make: (rng) => anyFinite(rng, 20011) },
  {
    name: 'exactly k ties',
    // n = 10: five entries of 7 and five smaller ones; at r = 0.5 the 5 ties are exactly k.
    make: () => Float32Array.from([7, -1, 7, 2, -7, 3, 7, 0, -7, 0.5]),
  },
  { name: 'quantised normal (heavy ties)', make: (rng) => normal(rng, 50000).map((x) => Math.round(x * 8) / 8) },
];
for (const c of ADVERSARIAL) {
  test(`select - matches full sort: ${c.name}`, (t) => {
    checkAllRatios(t, c.make(new Rng(c.name.length * 7919)), new Rng(42));
  });
}

test('select - exactly k ties: exact rule keeps all of them, ties rule keeps k', (t) => {
  const values = Float32Array.from([7, -1, 7, 2, -7, 3, 7, 0, -7, 0.5]);
  const sel = selectThreshold(values, keepCount(10, 0.5));
  t.is(sel.threshold, 7);
  t.is(sel.countAbove, 0);
  t.is(sel.countEqual, 5);
  t.deepEqual(Array.from(computeMask(values, sel.thresholdBits)), [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]);
});

test('select - exact rule breaks ties by lowest flat index, across segments', (t) => {
  const values = Float32Array.from([1, 5, 1, 1, -1, 9, 1, 1]);
  // k = 4: 9 and 5 are above T = 1; two of six ties go to the lowest indices 0 and 2.
  const parts = [values.subarray(0, 3), values.subarray(3, 3), values.subarray(3)];
  const sel = selectThreshold(parts, 4);
  t.deepEqual(sel.equalPerSegment, [2, 0, 4]);
  t.deepEqual(sel.quotas, [2, 0, 0]);
  const mask = concat(parts.map((p, j) => computeMask(p, sel.thresholdBits, sel.quotas[j])));
  t.deepEqual(Array.from(mask), [1, 1, 1, 0, 0, 1, 0, 0]);
});

test('select - tie quotas fill segments in order and reject inconsistent counts', (t) => {
  t.deepEqual(tieQuotas(10, 4, [0, 3, 5, 2]), [0, 3, 3, 0]);
  t.deepEqual(tieQuotas(10, 10, [1, 1]), [0, 0]);
  t.throws(() => tieQuotas(10, 4, [1, 1]), { instanceOf: RangeError });
  t.throws(() => tieQuotas(3, 4, [1]), { instanceOf: RangeError });
});

test('select - -0 and +0 are one saliency', (t) => {
  const values = Float32Array.from([-0, 0, -0, 1]);
  const sel = selectThreshold(values, 2);
  t.is(sel.thresholdBits, 0);
  t.is(sel.countEqual, 3);
  t.deepEqual(Array.from(computeMask(values, sel.thresholdBits, sel.quotas[0])), [1, 0, 0, 1]);
});

test('select - empty scope keeps nothing; k = n keeps everything via the fast path', (t) => {
  const none = selectThreshold([new Float32Array(0)], 0);
  t.is(none.threshold, Infinity);
  t.is(none.countAbove + none.countEqual, 0);
  const v = Float32Array.from([3, -2, 2, 5]);
  const all = selectThreshold([v.subarray(0, 2), v.subarray(2)], 4);
  t.is(all.threshold, 2);
  t.is(all.countEqual, 2);
  t.is(all.countAbove, 2);
  t.deepEqual(all.equalPerSegment, [1, 1]);
});

const NON_FINITE: readonly { name: string; value: number; kind: 'nan' | 'inf'; ratio: number }[] = [
  { name: 'NaN', value: NaN, kind: 'nan', ratio: 0.5 },
  { name: '+Inf', value: Infinity, kind: 'inf', ratio: 0.5 },
  { name: '-Inf', value: -Infinity, kind: 'inf', ratio: 0.9 },
  { name: 'NaN with k = n', value: NaN, kind: 'nan', ratio: 0 },
  { name: 'Inf with k = n', value: -Infinity, kind: 'inf', ratio: 0 },
];
for (const c of NON_FINITE) {
  test(`select - ${c.name} is an error naming the scope, tensor and index`, (t) => {
    const a = normal(new Rng(5), 100);
    const b = normal(new Rng(6), 100);
    b[37] = c.value;
    b[80] = c.value;
    const k = keepCount(200, c.ratio);
    const err = t.throws(() => selectThreshold([a, b], k, { scope: 'global', names: ['wte', 'h.0.c_fc'] }), {
      instanceOf: NonFiniteGradientError,
    });
    t.is(err.index, 37);
    t.is(err.tensor, 'h.0.c_fc');
    t.is(err.scope, 'global');
    t.is(err.kind, c.kind);
    t.regex(err.message, /h\.0\.c_fc.*index 37/);
    t.is(findNonFinite(b), 37);
    t.is(findNonFinite(a), -1);
  });
}

test('select - state machine reports non-finite counts so every rank can skip alike', (t) => {
  const a = Float32Array.from([1, NaN, 2]);
  const b = Float32Array.from([Infinity, 0]);
  const state = collectiveSelect([a, b], 2);
  t.deepEqual(state.status === 'nonFinite' ? state.nonFiniteCount : -1, 2);
});

test('select - a histogram sum that does not match is rejected', (t) => {
  const values = normal(new Rng(9), 100);
  const state = createSelectState(101, 10); // claims one entry more than the segments hold
  if (state.status !== 'running') return t.fail();
  const spec = passSpec(state);
  t.throws(() => advance(state, histogram(values, spec)), { message: /counted 100 keys, expected 101/ });
  t.throws(() => createSelectState(10, 11), { instanceOf: RangeError });
  t.throws(() => advance(state, new Float64Array(3)), { instanceOf: RangeError });
});

test('select - property: random sizes, ratios and segmentations match the sort', (t) => {
  const rng = new Rng(20240601);
  for (let trial = 0; trial < 60; trial++) {
    const n = 1 + rng.nextInt(3000);
    const kind = rng.nextInt(3);
    const values = kind === 0 ? normal(rng, n) : kind === 1 ? anyFinite(rng, n) : pick(rng, n, [0, 1, 2, 3]);
    const k = 1 + rng.nextInt(n);
    const ref = reference(values, k);
    const parts = split(rng, values, 1 + rng.nextInt(5));
    const sel = selectThreshold(parts, k);
    t.is(sel.threshold, ref.threshold, `trial ${trial}`);
    const exact = concat(parts.map((p, j) => computeMask(p, sel.thresholdBits, sel.quotas[j])));
    t.is(firstDiff(exact, ref.keepExact), -1, `trial ${trial}`);
  }
});

test('select - compacted candidates give the same later histograms; a wrong expected count throws', (t) => {
  const values = normal(new Rng(10), 5000);
  const s0 = createSelectState(5000, 1234);
  if (s0.status !== 'running') return t.fail();
  const h0 = histogram(values, passSpec(s0));
  const s1 = advance(s0, h0);
  if (s1.status !== 'running') return t.fail();
  const spec1 = passSpec(s1);
  const { histogram: h1, candidates } = histogramAndCompact(values, spec1, h0[spec1.prefix]!);
  t.deepEqual(Array.from(h1), Array.from(histogram(values, spec1)));
  const s2 = advance(s1, h1);
  if (s2.status !== 'running') return t.fail();
  t.deepEqual(Array.from(histogram(candidates, passSpec(s2))), Array.from(histogram(values, passSpec(s2))));
  t.throws(() => histogramAndCompact(values, spec1, h0[spec1.prefix]! + 1), { message: /expected/ });
});
