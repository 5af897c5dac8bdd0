/**
 * Benchmark of the data-parallel collectives over a real nats-server (docs/architecture.md §3), ranks
 * as separate processes (child_process.fork of this file), all in one run:
 *
 * (a) raw NATS: L = one publisher → one subscriber, 512 KiB messages, same client and server as the
 *     transport (a window of 16 un-acked messages, as the transport's credits); and E_hub(N) = the
 *     aggregate delivered rate of N concurrent flows in a ring (every process publishes to the next
 *     and receives from the previous), the broker egress under N flows.
 * (b) dense all-reduce (DenseCollective): algbw = 4P / t, busbw = algbw · 2(N−1)/N (nccl-tests'
 *     definitions; t is the all-reduce phase without the optimizer), and busbw / min(L, E_hub/N),
 *     the §2.2 bound. Our DenseCollective broadcasts the whole vector (each rank receives (N−1)·4P,
 *     not the 2(N−1)/N·4P of an optimal all-reduce), so busbw understates the bytes it moves.
 * (c) the masked pipeline (ShardedCollective, gmt, tensor scope, update mode) at r = 0.1, 0.5,
 *     0.9, 0.99: payload bytes per step counted through TransportObserver.onBytes against the §2.5
 *     model (per-rank recv = (N−1)/N·(4 + a)·P + (N−1)·H, a = min(0.125 + 4d, 8d), H = 16 KiB), and
 *     against dense; the step time split by phase (PhaseTimer hooks of the collectives).
 *
 * Layouts are real GPT-2 ParamLayouts (tensor boundaries matter for per-tensor thresholds) whose
 * size is close to P = 1M, 10M, 50M; gradients are uniform random per rank, parameters identical.
 * Run: npm run bench:collective  (GMT_BENCH_SIZES=1M,10M to limit; GMT_BENCH_WORLDS=2,4).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DenseCollective, ShardedCollective, type PhaseTimer, type TimedPhase } from '../trainer/src/collective/collective.js';
import { NatsTransport, startNatsServer } from '../trainer/src/collective/nats/index.js';
import type { CollectivePhase } from '../trainer/src/collective/transport.js';
import type { ModelConfig } from '../trainer/src/model/config.js';
import { ParamLayout } from '../trainer/src/model/params.js';
import type { OptimizerParams } from '../trainer/src/optim/optimizer.js';
import type { ScheduleParams } from '../trainer/src/optim/schedule.js';
import type { MethodConfig } from '../trainer/src/update/method.js';
import { ensureBinary } from '../test/harness/binaries.js';
import { median } from './common.js';

const SELF = fileURLToPath(import.meta.url);
const MSG_BYTES = 512 * 1024;
const RAW_WINDOW = 16;
const RAW_SECONDS = 3;
const H = 16 * 1024;
const RATIOS = [0.1, 0.5, 0.9, 0.99];
const MB = 1e6;

/** GPT-2-shaped layouts close to the target sizes (byte-level vocab). */
const SIZES: Record<string, { config: ModelConfig; warmup: number; reps: number }> = {
  '1M': { config: { vocabSize: 258, nPositions: 128, nEmbd: 128, nLayer: 5, nHead: 4, layerNormEps: 1e-5 }, warmup: 1, reps: 5 },
  '10M': { config: { vocabSize: 258, nPositions: 128, nEmbd: 256, nLayer: 12, nHead: 8, layerNormEps: 1e-5 }, warmup: 1, reps: 3 },
  '50M': { config: { vocabSize: 258, nPositions: 128, nEmbd: 512, nLayer: 16, nHead: 8, layerNormEps: 1e-5 }, warmup: 1, reps: 2 },
};

// ------------------------------------------------------------------------------------------------
// Child roles

/** Messages from a child to the parent. */
type ChildMsg = { kind: 'ready' } | { kind: 'flow'; bytes: number; first: number; last: number } | { kind: 'rank'; results: VariantResult[] };

/** Parent → child: start the timed part (wall clock shared through Date.now()). */

function send(m: ChildMsg): void {
  process.send!(m);
}

function waitGo(): Promise<void> {
  return new Promise((resolve) =>
    process.once('message', (m: { kind?: unknown }) => {
      if (m.kind === 'go') resolve();
    }),
  );
}

/**
 * A raw flow process: publishes 512 KiB messages to `raw.<next>` (window of RAW_WINDOW un-acked,
 * acks every 4 messages) and/or receives on `raw.<rank>`, for RAW_SECONDS after "go".
 */
async function flowRole(): Promise<void> {
  const env = process.env;
  const rank = Number(env['RANK']),
    n = Number(env['N']);
  const pub = env['PUB'] === '1',
    sub = env['SUB'] === '1';
  const nc: NatsConnection = await connect({ servers: env['URL']!, noEcho: true });
  const next = (rank + 1) % n,
    prev = (rank + n - 1) % n;
  let bytes = 0,
    first = 0,
    last = 0,
    got = 0;
  if (sub) {
    nc.subscribe(`raw.${rank}`, {
      callback: (_e, m) => {
        const now = Date.now();
        if (got === 0) first = now;
        got++;
        bytes += m.data.length;
        last = now;
        if (got % 4 === 0) nc.publish(`raw.ack.${prev}`, new TextEncoder().encode(String(got)));
      },
    });
  }
  let acked = 0,
    sent = 0;
  let wake: (() => void) | undefined;
  if (pub) {
    nc.subscribe(`raw.ack.${rank}`, {
      callback: (_e, m) => {
        acked = Math.max(acked, Number(new TextDecoder().decode(m.data)));
        wake?.();
      },
    });
  }
  await nc.flush();
  send({ kind: 'ready' });
  await waitGo();
  if (pub) {
    const payload = new Uint8Array(MSG_BYTES).fill(7);
    const end = Date.now() + RAW_SECONDS * 1000;
    while (Date.now() < end) {
      if (sent - acked >= RAW_WINDOW) {
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
        wake = undefined;
        continue;
      }
      nc.publish(`raw.${next}`, payload);
      sent++;
    }
  }
  // Let in-flight messages land, then report.
  await new Promise((r) => setTimeout(r, sub ? 500 : 100));
  send({ kind: 'flow', bytes, first, last });
  await nc.close();
}

/** One measured step of one variant on one rank. */
interface StepSample {
  readonly seconds: number;
  readonly phases: Partial<Record<TimedPhase, number>>;
  readonly sent: number;
  readonly received: number;
  readonly receivedByPhase: Partial<Record<CollectivePhase, number>>;
  readonly keptRatio: number;
}

interface VariantResult {
  readonly variant: string;
  readonly samples: StepSample[];
}

/** xorshift32 fill of uniform values in [−1, 1). */
function fillRandom(a: Float32Array, seed: number): void {
  let x = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    a[i] = x / 2147483648 - 1;
  }
}

/** A collective rank: dense, then the masked pipeline at each r, warm-up + reps steps each. */
async function rankRole(): Promise<void> {
  const env = process.env;
  const rank = Number(env['RANK']),
    n = Number(env['N']);
  const size = SIZES[env['SIZE']!]!;
  const layout = new ParamLayout(size.config);
  let sent = 0,
    received = 0;
  let byPhase: Partial<Record<CollectivePhase, number>> = {};
  const transport = await NatsTransport.connect({
    servers: env['URL']!,
    jobId: `bench-${env['SIZE']!.toLowerCase()}-${n}`,
    attempt: 0,
    rank,
    worldSize: n,
    peerTimeoutMs: 120_000,
    stepDeadlineMs: 900_000,
    rendezvousTimeoutMs: 120_000,
    observer: {
      onBytes: (phase, direction, b) => {
        if (phase === 'rendezvous') return; // the benchmark's own barrier
        if (direction === 'sent') sent += b;
        else {
          received += b;
          byPhase[phase] = (byPhase[phase] ?? 0) + b;
        }
      },
    },
  });
  const hp: OptimizerParams = { kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, momentum: 0 };
  const schedule: ScheduleParams = { lr: 1e-3, kind: 'constant', warmupSteps: 0, totalSteps: 1_000_000, minLrRatio: 0 };
  const params = new Float32Array(layout.size);
  fillRandom(params, 12345);
  for (let i = 0; i < params.length; i++) params[i] = params[i]! * 0.02;
  const localSum = new Float32Array(layout.size);
  const one = new Uint8Array(1);
  let step = 0;
  const barrier = async (): Promise<void> => {
    const s = transport.broadcast(step, 'rendezvous', 0, one);
    for (let j = 0; j < n; j++) if (j !== rank) await transport.recv(j, step, 'rendezvous', 0);
    await s;
  };
  const results: VariantResult[] = [];
  const variants: Array<{ name: string; cfg: MethodConfig; dense: boolean }> = [
    {
      name: 'dense',
      dense: true,
      cfg: { method: 'sft', maskRatio: 0, maskScope: 'tensor', maskMode: 'update', tieRule: 'all', seed: 1, nonFinite: 'skip', maxGradNorm: 1 },
    },
    // The protocol's own dense path: SFT through the sharded collective = reduce-scatter + dense all-gather.
    {
      name: 'rs+ag',
      dense: false,
      cfg: { method: 'sft', maskRatio: 0, maskScope: 'tensor', maskMode: 'update', tieRule: 'all', seed: 1, nonFinite: 'skip', maxGradNorm: 1 },
    },
    ...RATIOS.map((r) => ({
      name: `r=${r}`,
      dense: false,
      cfg: {
        method: 'gmt',
        maskRatio: r,
        maskScope: 'tensor',
        maskMode: 'update',
        tieRule: 'all',
        seed: 1,
        nonFinite: 'skip',
        maxGradNorm: 1,
      } satisfies MethodConfig,
    })),
  ];
  await waitGo();
  for (const v of variants) {
    let phases: Partial<Record<TimedPhase, number>> = {};
    const timer: PhaseTimer = (p, s) => {
      phases[p] = (phases[p] ?? 0) + s;
    };
    const collective = v.dense
      ? new DenseCollective(transport, layout, v.cfg, hp, schedule, timer)
      : new ShardedCollective(transport, layout, v.cfg, hp, schedule, timer);
    const samples: StepSample[] = [];
    for (let i = 0; i < size.warmup + size.reps; i++) {
      fillRandom(localSum, 1000 * rank + step + 1);
      await barrier();
      sent = 0;
      received = 0;
      byPhase = {};
      phases = {};
      const t0 = performance.now();
      const u = await collective.step({ step, params, localSum, microBatches: n });
      const seconds = (performance.now() - t0) / 1000;
      if (i >= size.warmup) samples.push({ seconds, phases, sent, received, receivedByPhase: byPhase, keptRatio: u.keptRatio });
      step++;
    }
    results.push({ variant: v.name, samples });
  }
  await barrier();
  send({ kind: 'rank', results });
  await transport.close();
}

// ------------------------------------------------------------------------------------------------
// Parent

function start(role: string, env: Record<string, string>): { child: ChildProcess; msgs: ChildMsg[]; ready: Promise<void>; done: Promise<void> } {
  const child = fork(SELF, [], { env: { ...process.env, GMT_BENCH_ROLE: role, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const msgs: ChildMsg[] = [];
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((r) => {
    onReady = r;
  });
  child.on('message', (m: ChildMsg) => {
    msgs.push(m);
    if (m.kind === 'ready') onReady();
  });
  const done = new Promise<void>((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${role} child exited ${code}`)))));
  return { child, msgs, ready, done };
}

/** Aggregate delivered rate (B/s) of flows: Σ bytes / (max last − min first). */
async function flows(url: string, n: number, pubs: boolean[], subs: boolean[]): Promise<number> {
  const kids = Array.from({ length: n }, (_, r) =>
    start('flow', { URL: url, RANK: String(r), N: String(n), PUB: pubs[r] ? '1' : '0', SUB: subs[r] ? '1' : '0' }),
  );
  await Promise.all(kids.map((k) => k.ready));
  for (const k of kids) k.child.send({ kind: 'go' });
  await Promise.all(kids.map((k) => k.done));
  const reports = kids.flatMap((k) => k.msgs.filter((m): m is Extract<ChildMsg, { kind: 'flow' }> => m.kind === 'flow')).filter((m) => m.bytes > 0);
  const bytes = reports.reduce((a, m) => a + m.bytes, 0);
  const span = (Math.max(...reports.map((m) => m.last)) - Math.min(...reports.map((m) => m.first))) / 1000;
  return bytes / span;
}

async function gang(url: string, size: string, n: number): Promise<VariantResult[][]> {
  const kids = Array.from({ length: n }, (_, r) => start('rank', { URL: url, RANK: String(r), N: String(n), SIZE: size }));
  // Ranks rendezvous inside NatsTransport.connect; "go" only starts the steps.
  for (const k of kids) k.child.send({ kind: 'go' });
  await Promise.all(kids.map((k) => k.done));
  return kids.map((k) => (k.msgs.find((m) => m.kind === 'rank') as Extract<ChildMsg, { kind: 'rank' }>).results);
}

const pad = (s: string, w: number): string => s.padStart(w);
const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

async function main(): Promise<void> {
  const sizes = (process.env['GMT_BENCH_SIZES'] ?? '1M,10M,50M').split(',');
  const worlds = (process.env['GMT_BENCH_WORLDS'] ?? '2,4').split(',').map(Number);
  const t0 = performance.now();
  const server = await startNatsServer({ binary: await ensureBinary('nats-server') });
  try {
    console.log(
      `collective benchmark: nats-server ${server.url}, ${MSG_BYTES / 1024} KiB messages/chunks, Node ${process.version}, ${(await import('node:os')).availableParallelism()} CPUs`,
    );
    const L = await flows(server.url, 2, [true, false], [false, true]);
    const E: Record<number, number> = {};
    for (const n of worlds) E[n] = await flows(server.url, n, new Array<boolean>(n).fill(true), new Array<boolean>(n).fill(true));
    console.log('\n(a) raw NATS (MB = 1e6 B)');
    console.log(`  L        1 pub → 1 sub              ${f(L / MB, 0)} MB/s`);
    for (const n of worlds)
      console.log(
        `  E_hub(${n}) ${n} concurrent flows (ring)   ${f(E[n]! / MB, 0)} MB/s aggregate; E_hub/N = ${f(E[n]! / n / MB, 0)} MB/s; bound min(L, E_hub/N) = ${f(Math.min(L, E[n]! / n) / MB, 0)} MB/s`,
      );

    const denseRows: string[] = [];
    const rsagRows: string[] = [];
    const maskedRows: string[] = [];
    for (const size of sizes) {
      const P = new ParamLayout(SIZES[size]!.config).size;
      for (const n of worlds) {
        const ts = performance.now();
        const perRank = await gang(server.url, size, n);
        const variants = perRank[0]!.map((v) => v.variant);
        const stat = (vi: number) => {
          const reps = perRank[0]![vi]!.samples.length;
          const stepT = median(Array.from({ length: reps }, (_, i) => Math.max(...perRank.map((r) => r[vi]!.samples[i]!.seconds))));
          const phase = (p: TimedPhase) => median(Array.from({ length: reps }, (_, i) => Math.max(...perRank.map((r) => r[vi]!.samples[i]!.phases[p] ?? 0))));
          const recv = perRank.reduce((a, r) => a + r[vi]!.samples[reps - 1]!.received, 0) / n;
          const kept = perRank[0]![vi]!.samples[reps - 1]!.keptRatio;
          return { stepT, phase, recv, kept };
        };
        const dense = stat(variants.indexOf('dense'));
        const tAr = dense.phase('all_reduce');
        const algbw = (4 * P) / tAr,
          busbw = (algbw * 2 * (n - 1)) / n;
        const bound = Math.min(L, (E[n] ?? NaN) / n);
        denseRows.push(
          `${pad(size, 4)} ${pad(String(P), 10)} ${pad(String(n), 2)} ${pad(f(dense.stepT, 3), 8)} ${pad(f(tAr, 3), 8)} ${pad(f(dense.phase('optimizer'), 3), 7)} ${pad(f(dense.recv / MB, 1), 9)} ${pad(f((((2 * (n - 1)) / n) * 4 * P) / MB, 1), 9)} ${pad(f(algbw / MB, 0), 7)} ${pad(f(busbw / MB, 0), 7)} ${pad(f(bound / MB, 0), 7)} ${pad(f(busbw / bound, 2), 6)}`,
        );
        {
          const x = stat(variants.indexOf('rs+ag'));
          const tComm = x.phase('reduce_scatter') + x.phase('norm_threshold') + x.phase('all_gather');
          const ab = (4 * P) / tComm,
            bb = (ab * 2 * (n - 1)) / n;
          rsagRows.push(
            `${pad(size, 4)} ${pad(String(P), 10)} ${pad(String(n), 2)} ${pad(f(x.stepT, 3), 8)} ${pad(f(tComm, 3), 8)} ${pad(f(x.phase('optimizer'), 3), 7)} ${pad(f(x.recv / MB, 1), 9)} ${pad(f((((2 * (n - 1)) / n) * 4 * P) / MB, 1), 9)} ${pad(f(ab / MB, 0), 7)} ${pad(f(bb / MB, 0), 7)} ${pad(f(bound / MB, 0), 7)} ${pad(f(bb / bound, 2), 6)}`,
          );
        }
        for (const r of RATIOS) {
          const s = stat(variants.indexOf(`r=${r}`));
          const d = 1 - r;
          const a = Math.min(0.125 + 4 * d, 8 * d);
          const model = ((n - 1) / n) * (4 + a) * P + (n - 1) * H;
          const dev = s.recv / model - 1;
          maskedRows.push(
            `${pad(size, 4)} ${pad(String(n), 2)} ${pad(String(r), 5)} ${pad(f(100 * s.kept, 1), 6)} ${pad(f(s.stepT, 3), 8)} ${pad(f(s.stepT / dense.stepT, 2), 6)} ${pad(f(s.phase('reduce_scatter'), 3), 7)} ${pad(f(s.phase('norm_threshold'), 3), 8)} ${pad(f(s.phase('all_gather'), 3), 7)} ${pad(f(s.phase('optimizer'), 3), 7)} ${pad(f(s.recv / MB, 2), 9)} ${pad(f(model / MB, 2), 9)} ${pad(`${dev >= 0 ? '+' : ''}${f(100 * dev, 1)}%`, 7)} ${pad(Math.abs(dev) <= 0.05 ? 'yes' : 'NO', 4)} ${pad(f(s.recv / dense.recv, 3), 7)} ${pad(f(s.recv / (((2 * (n - 1)) / n) * 4 * P), 3), 6)} ${pad(f((4 + a) / 8, 3), 7)}`,
          );
        }
        process.stderr.write(`[bench] P=${size} N=${n}: ${((performance.now() - ts) / 1000).toFixed(1)} s\n`);
      }
    }
    console.log('\n(b) dense all-reduce (DenseCollective, sft update; times = slowest rank, median of reps; MB = 1e6 B)');
    console.log('   P      params  N   step s  allred s   opt s  recv MB  ring MB   algbw   busbw   bound  ratio');
    for (const row of denseRows) console.log(row);
    console.log('   recv MB: measured per-rank payload received (DenseCollective broadcasts: (N−1)·4P); ring MB: 2(N−1)/N·4P, the busbw convention');
    console.log('   algbw = 4P / t_allreduce, busbw = algbw·2(N−1)/N (MB/s); bound = min(L, E_hub(N)/N); ratio = busbw / bound');
    console.log("\n(b2) dense reduce-scatter + all-gather (ShardedCollective, sft: the protocol's own dense path; comm = RS + norm + AG)");
    console.log('   P      params  N   step s   comm s   opt s  recv MB  ring MB   algbw   busbw   bound  ratio');
    for (const row of rsagRows) console.log(row);
    console.log('\n(c) masked pipeline (ShardedCollective, gmt, tensor scope, update mode; per-rank payload bytes received per step)');
    console.log('   P  N     r kept%   step s ×dense   RS s  norm+thr   AG s   opt s   recv MB  model MB    dev  ≤5%  /dense  /ring  (4+a)/8');
    for (const row of maskedRows) console.log(row);
    console.log('   model = (N−1)/N·(4+a)·P + (N−1)·16 KiB with a = min(0.125+4d, 8d), d = 1−r (§2.5); dev = recv/model − 1;');
    console.log('   /dense = masked recv / measured DenseCollective recv; /ring = masked recv / 2(N−1)/N·4P; (4+a)/8 = the §2.5 model of /ring.');
    console.log(`\ntotal ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  } finally {
    await server.stop();
  }
}

const role = process.env['GMT_BENCH_ROLE'];
const run = role === 'flow' ? flowRole : role === 'rank' ? rankRole : main;
run().then(
  () => {
    if (role !== undefined) process.exit(0);
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
