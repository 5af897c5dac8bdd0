/**
 * The fused GMT selection's fast path (masking/select-threshold.ts selectFromPass1): pass 1 counted
 * on the unscaled |g| in the norm's pass (update/norm.ts canonicalNormAndHistograms), the clip scale
 * applied in pass 2, the threshold mapped through the clip. Checked bit for bit against the unfused
 * reference: scaleInPlace, then selectThreshold on the scaled values.
 */
import test, { type ExecutionContext } from 'ava';
import { Rng } from '../../../trainer/src/rng.js';
import { PASS1_BINS, createSelectState, histogram, keepCount, passSpec, selectThreshold } from '../../../trainer/src/masking/index.js';
import { scaleInPlace } from '../../../trainer/src/optim/clip.js';
import { canonicalNorm, canonicalNormAndHistograms } from '../../../trainer/src/update/norm.js';
import { bitEqual } from '../../helpers/compare.js';
import { fromBits, normal, split } from './reference.js';

/** Pass-1 histograms of the unscaled segments, as the state machine's first pass counts them. */
function pass1Of(segs: readonly Float32Array[]): Uint32Array[] {
  const state = createSelectState(1, 1);
  if (state.status !== 'running') throw new Error('unreachable');
  const spec = passSpec(state);
  return segs.map((s) => histogram(s, spec));
}

function check(t: ExecutionContext, segs: readonly Float32Array[], k: number, scale: number, label: string): void {
  const ref = segs.map((s) => s.slice());
  for (const s of ref) scaleInPlace(s, scale);
  const want = selectThreshold(ref, k);
  const got = segs.map((s) => s.slice());
  const sel = selectThreshold(got, k, {}, scale, pass1Of(segs));
  t.deepEqual(
    { ...sel, threshold: Object.is(sel.threshold, want.threshold) },
    { ...want, threshold: true },
    `${label}: selection (T bits ${sel.thresholdBits.toString(16)} vs ${want.thresholdBits.toString(16)})`,
  );
  t.true(
    got.every((s, j) => bitEqual(s, ref[j]!)),
    `${label}: segments scaled as scaleInPlace does`,
  );
}

const SCALES = [1, Math.fround(1 - 2 ** -30), 0.5, 0.085, 1e-3, 3e-7, 1e-30, 1e-38, 1e-40];

test('select from pass 1 - random values, zeros and duplicates: equal to scaling then selecting, every scale and ratio', (t) => {
  const rng = new Rng(11);
  for (const n of [7, 300, 5000]) {
    const v = normal(rng, n, 0.01);
    for (let i = 0; i < n / 10; i++) v[rng.nextInt(n)] = 0;
    for (let i = 0; i + 1 < n; i += 13) v[i + 1] = -v[i]!;
    for (const parts of [1, 3]) {
      const segs = parts === 1 ? [v] : split(rng, v, parts);
      for (const r of [0.01, 0.2, 0.5, 0.9, 0.99]) {
        const k = keepCount(n, r);
        for (const scale of SCALES) check(t, segs, k, scale, `n=${n} parts=${parts} r=${r} scale=${scale}`);
      }
    }
  }
});

test('select from pass 1 - k = 0 and k = n take the unfused path and still scale', (t) => {
  const rng = new Rng(12);
  const segs = split(rng, normal(rng, 400, 1), 2);
  for (const scale of [1, 0.3]) {
    check(t, segs, 0, scale, `k=0 scale=${scale}`);
    check(t, segs, 400, scale, `k=n scale=${scale}`);
  }
});

test('select from pass 1 - a preimage of T_y straddling a pass-1 bin edge (fallback count on the scaled values)', (t) => {
  // 1.0 is the first key of its pass-1 bin (0x3f800000 = 0x3f8 << 20); its predecessor is the last
  // key of the bin below. A tiny scale rounds both to the same denormal, so T_y's preimage straddles.
  const below = 0x3f7fffff,
    edge = 0x3f800000,
    f = 1e-38;
  const y = (bits: number) => Math.fround(fromBits([bits])[0]! * Math.fround(f));
  t.is(y(below), y(edge), 'the case merges across the bin edge');
  const bits: number[] = [];
  for (let i = 0; i < 40; i++) bits.push(i % 3 === 0 ? edge : i % 3 === 1 ? below : 0x3f000000 + i);
  const v = fromBits(bits);
  for (let i = 0; i < v.length; i += 4) v[i] = -v[i]!;
  const segs = [v.subarray(0, 17), v.subarray(17)];
  for (let k = 1; k < v.length; k++) check(t, segs, k, f, `k=${k}`);
  // The same values unclipped and mildly clipped: nothing merges across the edge.
  for (const scale of [1, 0.75]) for (const k of [5, 14, 27]) check(t, segs, k, scale, `k=${k} scale=${scale}`);
});

test('select from pass 1 - denormal and max-float keys', (t) => {
  const bits = [0, 1, 2, 3, 0x007fffff, 0x00800000, 0x7f7fffff, 0x7f7ffffe, 0x7f000000, 1, 1, 0x7f7fffff];
  const v = fromBits(bits);
  for (let k = 1; k < v.length; k++) for (const scale of SCALES) check(t, [v], k, scale, `k=${k} scale=${scale}`);
});

test('canonicalNormAndHistograms - the canonical norm bits and each segment pass-1 histogram', (t) => {
  const rng = new Rng(13);
  const n = 3 * 4096 + 77;
  const v = normal(rng, n, 0.02);
  v[5] = 0;
  v[9000] = -0;
  const layouts = [
    [{ offset: 0, size: n }],
    [
      { offset: 0, size: 10 },
      { offset: 10, size: 0 },
      { offset: 10, size: 4090 },
      { offset: 4100, size: 5000 },
      { offset: 9100, size: n - 9100 },
    ],
    // Gaps: entries outside every segment count towards the norm only.
    [
      { offset: 3, size: 4 },
      { offset: 4000, size: 200 },
      { offset: 12000, size: 1 },
    ],
    [],
  ];
  for (const segments of layouts) {
    const hs = segments.map(() => new Uint32Array(PASS1_BINS).fill(7)); // stale counts are cleared
    const norm = canonicalNormAndHistograms(v, segments, hs);
    t.true(Object.is(norm, canonicalNorm(v)), `norm ${norm} vs ${canonicalNorm(v)}`);
    const want = pass1Of(segments.map((s) => v.subarray(s.offset, s.offset + s.size)));
    segments.forEach((s, j) => t.deepEqual([...hs[j]!], [...want[j]!], `segment at ${s.offset}+${s.size}`));
  }
  t.throws(() => canonicalNormAndHistograms(v, [{ offset: 0, size: n }], []), { instanceOf: RangeError });
});
