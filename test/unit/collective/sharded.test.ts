/**
 * The sharded protocol (reduce-scatter, exchanged norm partials and threshold histograms, masked
 * all-gather) against two independent references: one process with accumulation N, and a dense
 * all-reduce on every rank. All must give bit-identical parameters on every rank after every step.
 */
import test from 'ava';
import { TrainerConfigSchema } from '../../../contract/config.js';
import { type Collective, DenseCollective, LocalCollective, ShardedCollective } from '../../../trainer/src/collective/collective.js';
import type { CollectivePhase, Transport } from '../../../trainer/src/collective/transport.js';
import { shardRanges } from '../../../trainer/src/collective/shards.js';
import { MODEL_PRESETS } from '../../../trainer/src/model/config.js';
import { ParamLayout } from '../../../trainer/src/model/params.js';
import { initParams } from '../../../trainer/src/model/init.js';
import { Rng } from '../../../trainer/src/rng.js';
import { optimizerParams, scheduleParams } from '../../../trainer/src/update/method.js';
import { bitEqual } from '../../helpers/compare.js';

/** A minimal in-process transport for N ranks (each message taken once, buffered by key). */
function loopback(n: number): Transport[] {
  const boxes = new Map<string, { value?: Uint8Array; waiters: Array<(v: Uint8Array) => void> }>();
  const box = (k: string) => {
    let b = boxes.get(k);
    if (!b) {
      b = { waiters: [] };
      boxes.set(k, b);
    }
    return b;
  };
  const put = (k: string, v: Uint8Array) => {
    const b = box(k);
    const w = b.waiters.shift();
    if (w) w(v);
    else b.value = v;
  };
  return Array.from({ length: n }, (_, rank): Transport => ({
    rank,
    worldSize: n,
    async send(to: number, step: number, phase: CollectivePhase, tag: number, data: Uint8Array) {
      put(`${rank}>${to}:${step}:${phase}:${tag}`, data.slice());
    },
    async broadcast(step: number, phase: CollectivePhase, tag: number, data: Uint8Array) {
      for (let j = 0; j < n; j++) if (j !== rank) put(`${rank}>${j}:${step}:${phase}:${tag}`, data.slice());
    },
    recv(from: number, step: number, phase: CollectivePhase, tag: number) {
      const b = box(`${from}>${rank}:${step}:${phase}:${tag}`);
      if (b.value !== undefined) {
        const v = b.value;
        delete b.value;
        return Promise.resolve(v);
      }
      return new Promise((r) => b.waiters.push(r));
    },
    abort() {},
    async close() {},
  }));
}

const layout = new ParamLayout(MODEL_PRESETS.micro);
const P = layout.size;

/** Per-step, per-rank local gradient sums with exact zeros, −0 and ties sprinkled in. */
function contributions(seed: number, steps: number, n: number): Float32Array[][] {
  const rng = new Rng(seed);
  return Array.from({ length: steps }, () =>
    Array.from({ length: n }, () => {
      const g = new Float32Array(P).map(() => rng.nextNormal() * 0.05);
      for (let i = 0; i < P / 50; i++) g[rng.nextInt(P)] = [0, -0, 0.125, -0.125][rng.nextInt(4)]!;
      return g;
    }),
  );
}

async function runRanks(make: (t: Transport) => Collective, n: number, c: ReturnType<typeof contributions>, init: Float32Array): Promise<Float32Array[]> {
  const transports = loopback(n);
  const cols = transports.map(make);
  const params = cols.map(() => init.slice());
  for (let step = 0; step < c.length; step++) {
    await Promise.all(cols.map((col, r) => col.step({ step, params: params[r]!, localSum: c[step]![r]!.slice(), microBatches: n })));
    await Promise.all(cols.map((col, r) => col.checkConsistency(step, params[r]!)));
  }
  return params;
}

const cases = [
  { method: 'gmt', maskScope: 'tensor', maskMode: 'update', tieRule: 'all' },
  { method: 'gmt', maskScope: 'global', maskMode: 'update', tieRule: 'all' },
  { method: 'gmt', maskScope: 'tensor', maskMode: 'gradient', tieRule: 'all' },
  { method: 'gmt', maskScope: 'global', maskMode: 'gradient', tieRule: 'exact' },
  { method: 'gmt', maskScope: 'tensor', maskMode: 'update', tieRule: 'exact' },
  { method: 'random', maskScope: 'tensor', maskMode: 'update', tieRule: 'all' },
  { method: 'random', maskScope: 'global', maskMode: 'gradient', tieRule: 'all' },
  { method: 'sft', maskScope: 'tensor', maskMode: 'update', tieRule: 'all' },
  { method: 'hft', maskScope: 'tensor', maskMode: 'update', tieRule: 'all' },
] as const;

for (const n of [2, 3, 4]) {
  for (const cs of cases) {
    test(`collective - ${cs.method} ${cs.maskScope}/${cs.maskMode}/${cs.tieRule}, N=${n}: sharded = dense all-reduce = one process with accumulation N, bit for bit`, async (t) => {
      const cfg = TrainerConfigSchema.parse({ ...cs, maskRatio: 0.6, steps: 4, lr: 1e-2, weightDecay: 0.05, warmupRatio: 0.25 });
      const hp = optimizerParams(cfg),
        sched = scheduleParams(cfg);
      const c = contributions(1000 + n, 4, n);
      const init = initParams(layout, 5);
      // One process: Σ in rank order (0 + c₀ + … as the ranks' own sums are), divided by M = N.
      const single = new LocalCollective(layout, cfg, hp, sched);
      const ref = init.slice();
      for (let step = 0; step < c.length; step++) {
        const sum = new Float32Array(P);
        for (const part of c[step]!) for (let i = 0; i < P; i++) sum[i] = sum[i]! + part[i]!;
        await single.step({ step, params: ref, localSum: sum, microBatches: n });
      }
      const sharded = await runRanks((tr) => new ShardedCollective(tr, layout, cfg, hp, sched), n, c, init);
      const dense = await runRanks((tr) => new DenseCollective(tr, layout, cfg, hp, sched), n, c, init);
      for (let r = 0; r < n; r++) {
        t.true(bitEqual(sharded[r]!, ref), `sharded rank ${r} vs one process`);
        t.true(bitEqual(dense[r]!, ref), `dense rank ${r} vs one process`);
      }
      t.false(bitEqual(ref, init), 'the parameters moved');
    });
  }
}

test('collective - shards are NORM_BLOCK-aligned, contiguous and split tensors', (t) => {
  for (const n of [1, 2, 3, 4, 7]) {
    const s = shardRanges(P, n);
    t.is(s[0]!.lo, 0);
    t.is(s[n - 1]!.hi, P);
    for (let j = 1; j < n; j++) {
      t.is(s[j]!.lo, s[j - 1]!.hi);
      t.is(s[j]!.lo % 4096, 0);
    }
  }
});

test('collective - the sharded optimizer state holds only the own shard and gathers to rank 0', async (t) => {
  const cfg = TrainerConfigSchema.parse({ method: 'gmt', maskRatio: 0.5, steps: 2 });
  const n = 3;
  const cols = loopback(n).map((tr) => new ShardedCollective(tr, layout, cfg, optimizerParams(cfg), scheduleParams(cfg)));
  const c = contributions(7, 2, n);
  const params = cols.map(() => initParams(layout, 1));
  const single = new LocalCollective(layout, cfg, optimizerParams(cfg), scheduleParams(cfg));
  const ref = initParams(layout, 1);
  for (let step = 0; step < 2; step++) {
    await Promise.all(cols.map((col, r) => col.step({ step, params: params[r]!, localSum: c[step]![r]!.slice(), microBatches: n })));
    const sum = new Float32Array(P);
    for (const part of c[step]!) for (let i = 0; i < P; i++) sum[i] = sum[i]! + part[i]!;
    await single.step({ step, params: ref, localSum: sum, microBatches: n });
  }
  t.true(cols.every((col) => col.state.m.length < P));
  t.true(cols[1]!.optimizerBytesSaved > 0);
  const full = await Promise.all(cols.map((col) => col.gatherOptimizer(2)));
  t.true(bitEqual(full[0]!.m, single.state.m) && bitEqual(full[0]!.v, single.state.v));
  t.is(full[1], undefined);
});
