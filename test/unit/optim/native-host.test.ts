/**
 * The native host loops (trainer/native/gmt_ops.cc via trainer/src/native/host.ts, used once the
 * native backend has loaded them) against the JavaScript loops they replace, bit for bit: the AdamW
 * forms (dense, keep-mask, threshold; sub-ranges with a state offset; 1-3 threads; ties; edge values;
 * NaN/Inf in masked entries), the norm's block sums and pass-1 histograms with the speculative pass-2
 * candidates, the clip's scaling, the radix selection's compaction and later passes, and whole GMT and
 * SFT updates (Updater) over several steps; plus the errors a bad argument gets. optimizer.test.ts and
 * the masking tests check the JavaScript loops against independent references.
 */
import test from 'ava';
import { initBackend, nativeBuilt } from '../../../trainer/src/backend.js';
import { TrainerConfigSchema } from '../../../contract/config.js';
import { PASS1_BINS, advance, createSelectState, histogram, histogramAndCompact, passSpec } from '../../../trainer/src/masking/radix-select.js';
import { enableNativeHost, nativeHost, type NativeHostFns } from '../../../trainer/src/native/host.js';
import { scaleInPlace } from '../../../trainer/src/optim/clip.js';
import { optimizerParams, scheduleParams } from '../../../trainer/src/update/method.js';
import { canonicalNorm, canonicalNormAndHistograms, type Pass2Speculation } from '../../../trainer/src/update/norm.js';
import { Updater } from '../../../trainer/src/update/updater.js';
import { MODEL_PRESETS } from '../../../trainer/src/model/config.js';
import { ParamLayout } from '../../../trainer/src/model/params.js';
import { type OptimizerParams, type OptimizerState, type ThresholdRange, adamwStepThreshold, optimizerStep } from '../../../trainer/src/optim/optimizer.js';
import { Rng } from '../../../trainer/src/rng.js';
import { bitEqual } from '../../helpers/compare.js';

const info = nativeBuilt() ? await initBackend('tensorflow') : undefined;

const HP: OptimizerParams = { kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, momentum: 0 };

/** Gradients over many scales with edge values mixed in; parameters and moments to match. */
function arrays(n: number, seed: number): { p: Float32Array; g: Float32Array; m: Float32Array; v: Float32Array } {
  const r = new Rng(seed);
  const p = new Float32Array(n),
    g = new Float32Array(n),
    m = new Float32Array(n),
    v = new Float32Array(n);
  const edge = [0, -0, 1e-45, -1e-45, 1.17e-38, 3e38, -3e38, 1e-30, 65504, 1];
  for (let i = 0; i < n; i++) {
    p[i] = r.nextNormal();
    g[i] = i % 97 === 0 ? edge[(i / 97) % edge.length]! : r.nextNormal() * 10 ** (r.nextInt(12) - 8);
    m[i] = r.nextNormal() * 1e-3;
    v[i] = Math.abs(r.nextNormal()) * 1e-6;
  }
  return { p, g, m, v };
}

function state(m: Float32Array, v: Float32Array, step: number): OptimizerState {
  return { step, m, v };
}

/** Runs fn on copies with the native functions off, then on, and says whether every array matches bit for bit. */
function sameBits(
  fn: (p: Float32Array, g: Float32Array, s: OptimizerState) => unknown,
  a: ReturnType<typeof arrays>,
  step = 4,
): { same: boolean; js: unknown; native: unknown } {
  const run = (native: boolean): { p: Float32Array; s: OptimizerState; out: unknown } => {
    enableNativeHost(native);
    const p = a.p.slice(),
      s = state(a.m.slice(), a.v.slice(), step);
    try {
      return { p, s, out: fn(p, a.g.slice(), s) };
    } finally {
      enableNativeHost(true);
    }
  };
  const js = run(false),
    nat = run(true);
  const same = bitEqual(js.p, nat.p) && bitEqual(js.s.m, nat.s.m) && bitEqual(js.s.v, nat.s.v) && js.s.step === nat.s.step;
  return { same, js: js.out, native: nat.out };
}

function lib(): NativeHostFns {
  const n = nativeHost();
  if (n === undefined) throw new Error('native AdamW not loaded');
  return n.fns;
}

/** fn with the native loops off, then on (restored on after). */
function both<T>(fn: () => T): { js: T; native: T } {
  enableNativeHost(false);
  try {
    const js = fn();
    enableNativeHost(true);
    return { js, native: fn() };
  } finally {
    enableNativeHost(true);
  }
}

test.serial('native adamw - loaded with the native backend once setup:native has built it', (t) => {
  t.true(nativeBuilt(), 'the native backend is not built: run `npm run setup:native`');
  t.true(info?.fusedKernels === true, info?.fusedKernelsReason ?? 'no backend');
  t.not(nativeHost(), undefined);
});

const N = 200_003; // enough for three pieces (pieces are ≥ 2^16 entries)

test.serial('native adamw - dense and keep-mask steps equal the JavaScript loops bit for bit, on sub-ranges with a state offset', (t) => {
  const a = arrays(N, 1);
  const r = new Rng(2);
  const keep = Uint8Array.from({ length: N }, () => (r.nextFloat() < 0.8 ? 1 : 0));
  for (const [lo, hi, so] of [
    [0, N, 0],
    [1234, N - 77, 1234],
    [70_001, 190_000, 5],
  ] as const) {
    const dense = sameBits((p, g, s) => optimizerStep(HP, s, p, g, 3e-4, undefined, lo, hi, so), a);
    t.true(dense.same, `dense [${lo}, ${hi}) so ${so}`);
    const masked = sameBits((p, g, s) => optimizerStep(HP, s, p, g, 3e-4, keep, lo, hi, so), a);
    t.true(masked.same, `keep-mask [${lo}, ${hi}) so ${so}`);
  }
  // Masked entries are untouched even when their gradient is not finite.
  const b = arrays(N, 3);
  for (let i = 5; i < N; i += 1000) b.g[i] = i % 2000 === 5 ? NaN : Infinity;
  const nanKeep = Uint8Array.from({ length: N }, (_, i) => (i % 1000 === 5 ? 0 : 1));
  t.true(sameBits((p, g, s) => optimizerStep(HP, s, p, g, 1e-3, nanKeep), b).same, 'NaN/Inf under the mask');
});

test.serial('native adamw - the threshold form equals the JavaScript loop bit for bit, kept counts included, both tie rules', (t) => {
  const a = arrays(N, 4);
  for (let i = 0; i < N; i += 13) a.g[i] = 0; // ties at zero
  for (let i = 1; i + 1 < N; i += 29) a.g[i + 1] = -a.g[i]!; // equal magnitudes, both signs
  const bits = (x: number): number => new Uint32Array(new Float32Array([Math.abs(x)]).buffer)[0]!;
  const ranges: ThresholdRange[] = [
    { lo: 0, hi: 40_000, thresholdBits: 0, tieQuota: undefined },
    { lo: 40_000, hi: 90_000, thresholdBits: 0, tieQuota: 700 },
    { lo: 90_000, hi: 150_000, thresholdBits: bits(a.g[100_001]!), tieQuota: undefined },
    { lo: 150_000, hi: 170_000, thresholdBits: bits(a.g[150_002]!), tieQuota: 1 },
    { lo: 170_000, hi: 180_000, thresholdBits: 0x80000000, tieQuota: undefined },
    { lo: 180_000, hi: N, thresholdBits: bits(a.g[190_000]!), tieQuota: 0 },
  ];
  const r = sameBits((p, g, s) => adamwStepThreshold(HP, s, p, g, 2e-3, ranges), a);
  t.true(r.same, 'parameters and moments');
  t.deepEqual(r.native, r.js, 'kept counts');
  t.is((r.js as number[])[4], 0, 'thresholdBits 0x80000000 keeps nothing');
  t.is((r.js as number[])[0], 40_000, 'thresholdBits 0 keeps everything');
});

test.serial('native adamw - 1, 2 and 3 threads give the same bits', (t) => {
  const a = arrays(N, 5);
  const out = [1, 2, 3].map((threads) => {
    const p = a.p.slice(),
      m = a.m.slice(),
      v = a.v.slice();
    lib().adamwDense(p, a.g, m, v, 0, N, 0, 0.9, 0.999, 1e-8, 0.9999, 1e-3, 0.03, threads);
    const kept = lib().adamwThreshold(
      p,
      a.g,
      m,
      v,
      Float64Array.from([0, 100_000, 0x30000000, 100_000, N, 0x38000000]),
      0.9,
      0.999,
      1e-8,
      1,
      2e-3,
      0.04,
      threads,
    );
    return { p, m, v, kept };
  });
  for (const o of out.slice(1)) {
    t.true(bitEqual(o.p, out[0]!.p) && bitEqual(o.m, out[0]!.m) && bitEqual(o.v, out[0]!.v));
    t.deepEqual(o.kept, out[0]!.kept);
  }
});

test.serial('native adamw - a bad argument is refused with its name', (t) => {
  const f = new Float32Array(10);
  t.throws(() => lib().adamwDense(f, f, f, new Float64Array(10) as unknown as Float32Array, 0, 10, 0, 0.9, 0.999, 1e-8, 1, 1, 1, 1), {
    instanceOf: TypeError,
    message: 'v must be a Float32Array',
  });
  t.throws(() => lib().adamwDense(f, f, f, f, 0, 11, 0, 0.9, 0.999, 1e-8, 1, 1, 1, 1), {
    instanceOf: RangeError,
    message: /range \[0\.0+, 11\.0+\) with state offset 0\.0+ does not fit params \(10\)/,
  });
  t.throws(() => lib().adamwKeep(f, f, f, f, new Uint8Array(5), 0, 10, 0, 0.9, 0.999, 1e-8, 1, 1, 1, 1), {
    instanceOf: RangeError,
    message: /keep \(5\) is shorter/,
  });
  t.throws(() => lib().adamwThreshold(f, f, f, f, new Float64Array(4), 0.9, 0.999, 1e-8, 1, 1, 1, 1), {
    instanceOf: RangeError,
    message: /triples, got 4 numbers/,
  });
  t.throws(() => lib().adamwDense(f, f, f, f, 0, 10, 0, NaN, 0.999, 1e-8, 1, 1, 1, 1), { instanceOf: TypeError, message: 'b1 must be a finite number' });
});

test.serial('native host - the norm, its pass-1 histograms and the speculative pass-2 candidates equal the JavaScript passes', (t) => {
  const a = arrays(N, 6).g;
  const segments = [
    { offset: 0, size: 5000 },
    { offset: 5000, size: 70_000 },
    { offset: 90_000, size: 100_000 }, // a gap before it: counted in the norm only
    { offset: 190_000, size: N - 190_000 },
  ];
  const norm = both(() => canonicalNorm(a));
  t.is(norm.native, norm.js, 'canonicalNorm');
  const hists = both(() => {
    const h = segments.map(() => new Uint32Array(PASS1_BINS));
    return { n: canonicalNormAndHistograms(a, segments, h), h };
  });
  t.is(hists.native.n, hists.js.n, 'norm with histograms');
  t.deepEqual(hists.native.h, hists.js.h, 'pass-1 histograms');
  t.is(hists.js.n, norm.js);
  // Speculation: the keys of each segment's chosen bin, in index order, and their pass-2 digits.
  const bins = Int32Array.from([-1, 0x3a0, 0x3b8, 0x3a8]);
  const spec: Pass2Speculation = { bins, found: [] };
  canonicalNormAndHistograms(
    a,
    segments,
    segments.map(() => new Uint32Array(PASS1_BINS)),
    spec,
  );
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  segments.forEach((sg, j) => {
    if (bins[j]! < 0) return t.is(spec.found[j], undefined);
    const want: number[] = [];
    for (let i = sg.offset; i < sg.offset + sg.size; i++) if ((u[i]! & 0x7fffffff) >>> 20 === bins[j]) want.push(u[i]! & 0x7fffffff);
    t.true(want.length > 10, `segment ${j} has candidates`);
    t.deepEqual(Array.from(spec.found[j]?.candidates ?? []), want, `candidates of segment ${j}`);
    const h2 = new Uint32Array(1024);
    for (const x of want) h2[(x >>> 10) & 1023]!++;
    t.deepEqual(spec.found[j]?.histogram, h2, `pass-2 histogram of segment ${j}`);
  });
});

test.serial('native host - scaling and the radix compaction and later passes equal the JavaScript loops', (t) => {
  const a = arrays(N, 7).g;
  const scaled = both(() => {
    const c = a.slice();
    scaleInPlace(c, 0.3137, 17, N - 5);
    return c;
  });
  t.true(bitEqual(scaled.native, scaled.js), 'scaleInPlace');
  const start = createSelectState(N, Math.floor(N * 0.8));
  if (start.status !== 'running') throw new Error('select state');
  const h1 = histogram(a, passSpec(start));
  const second = advance(start, h1);
  if (second.status !== 'running') throw new Error('the selection ended after pass 1');
  const spec2 = passSpec(second);
  const bin = spec2.prefix;
  const compacted = both(() => histogramAndCompact(a.slice(), spec2, h1[bin]!));
  t.deepEqual(compacted.native, compacted.js, 'histogramAndCompact');
  const third = advance(second, compacted.js.histogram);
  if (third.status !== 'running') throw new Error('the selection ended after pass 2');
  const later = both(() => histogram(compacted.js.candidates, passSpec(third)));
  t.deepEqual(later.native, later.js, 'histogram of candidates');
});

test.serial('native host - whole SFT and GMT updates (tensor and global scope, both tie rules) equal the JavaScript path over 4 steps', (t) => {
  const layout = new ParamLayout(MODEL_PRESETS.micro);
  const n = layout.size;
  const variants: Array<Record<string, unknown>> = [
    { method: 'sft' },
    { method: 'gmt', maskRatio: 0.2, maskScope: 'tensor', tieRule: 'all' },
    { method: 'gmt', maskRatio: 0.9, maskScope: 'global', tieRule: 'exact' },
    { method: 'gmt', maskRatio: 0.5, maskScope: 'tensor', tieRule: 'exact' },
  ];
  for (const over of variants) {
    const c = TrainerConfigSchema.parse({ ...over, steps: 100, maxGradNorm: 0.5 });
    const run = (): { p: Float32Array; results: unknown[] } => {
      const u = new Updater(layout, c, optimizerParams(c), scheduleParams(c));
      const p = arrays(n, 8).p;
      const s = state(new Float32Array(n), new Float32Array(n), 0);
      const results: unknown[] = [];
      for (let step = 0; step < 4; step++) {
        const g = arrays(n, 20 + step).g.map((x, i) => (i % 5 === 0 ? 0 : x)); // ties at zero
        const r = u.update(step, p, g, s);
        results.push({ ...r, masks: r.masks?.kept });
      }
      return { p, results };
    };
    const r = both(run);
    t.true(bitEqual(r.native.p, r.js.p), `${JSON.stringify(over)}: parameters`);
    t.deepEqual(r.native.results, r.js.results, `${JSON.stringify(over)}: update results`);
  }
});
