/**
 * The native AdamW functions (trainer/native/gmt_ops.cc, used by optimizerStep and adamwStepThreshold
 * once the native backend has loaded them) against the JavaScript loops, bit for bit: dense, keep-mask
 * and threshold forms, sub-ranges with a state offset, 1-3 threads (the work is split among them),
 * ties, edge values (zeros, subnormals, huge and tiny gradients, NaN/Inf in masked entries), and the
 * errors a bad argument gets. optimizer.test.ts checks the JavaScript loops against a scalar reference.
 */
import test from 'ava';
import { initBackend, nativeBuilt } from '../../../trainer/src/backend.js';
import { enableNativeHost, nativeHost, type NativeHostFns } from '../../../trainer/src/native/host.js';
import {
  type OptimizerParams,
  type OptimizerState,
  type ThresholdRange,
  adamwStepThreshold,
  optimizerStep,
} from '../../../trainer/src/optim/optimizer.js';
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

test.serial('native adamw - loaded with the native backend once setup:native has built it', (t) => {
  t.true(nativeBuilt(), 'the native backend is not built: run `npm run setup:native`');
  t.true(info?.fusedKernels === true, info?.fusedKernelsReason ?? 'no backend');
  t.not(nativeHost(), undefined);
});

const N = 200_003; // more than one piece per thread (pieces are ≥ 2^15 entries)

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
