/**
 * The collective step (docs/architecture.md §3): from each rank's local gradient sum to identical parameters
 * on every rank. `LocalCollective` is world size 1. `ShardedCollective` runs the reference protocol
 * over a Transport: reduce-scatter with rank-order summation, the canonical norm from exchanged
 * block partials, collective exact thresholds (select.ts), the mask inside each owner's shard, and
 * the masked all-gather — of updated parameter values with a sharded optimizer state (maskMode
 * "update" and the dense methods), or of the masked averaged gradient with a replicated optimizer
 * (maskMode "gradient"). `DenseCollective` is the test reference: a dense all-reduce, then the
 * single-process update on every rank.
 */
import { NumericError, RetryableError } from '../errors.js';
import { applyMaskInPlace, findNonFinite, randomKeyWords } from '../masking/index.js';
import type { ParamLayout } from '../model/params.js';
import { type OptimizerParams, type OptimizerState, createOptimizerState, optimizerStep } from '../optim/optimizer.js';
import { type ScheduleParams, lrAt } from '../optim/schedule.js';
import {
  type MethodConfig,
  type UpdateResult,
  clipInPlace,
  keptIn,
  masksEveryStep,
  masksGradient,
  median,
  nonFiniteOutcome,
  staticKeepMask,
} from '../update/method.js';
import { blockSumSquares, normFromPartials } from '../update/norm.js';
import { Updater } from '../update/updater.js';
import { bytesOf, decodeMasked, encodeMasked, f32, f64, hashParams, u32 } from './codec.js';
import { type Piece, type ScopeView, selectScopes } from './select.js';
import { type Range, shardRanges } from './shards.js';
import type { Transport } from './transport.js';

/** One optimizer step's input on one rank. */
export interface StepInput {
  readonly step: number;
  readonly params: Float32Array;
  /** Σ of this rank's micro-batch gradients (not divided). Overwritten. */
  readonly localSum: Float32Array;
  /** M: micro-batches of the step over all ranks. */
  readonly microBatches: number;
}

/** Data-parallel step and state handling; one per rank. */
export interface Collective {
  readonly rank: number;
  readonly worldSize: number;
  /** Entries of the optimizer state this rank holds. */
  readonly optimizerRange: Range;
  /** Reduce, clip, mask and update: afterwards params are identical on every rank. */
  step(input: StepInput): Promise<UpdateResult>;
  /** Compare a hash of the parameters across ranks; throws DivergenceError on a mismatch. */
  checkConsistency(step: number, params: Float32Array): Promise<string>;
  /** The full optimizer state on rank 0 (gathered from the owners), undefined elsewhere. */
  gatherOptimizer(step: number): Promise<OptimizerState | undefined>;
  /** Take this rank's part of a full optimizer state (resume). */
  loadOptimizer(full: OptimizerState): void;
  /**
   * Whether any rank was asked to stop (SIGTERM) before step `step`: every rank gets the same answer,
   * so all of them stop at the same step boundary and take part in the final checkpoint together.
   */
  agreeToStop(step: number, local: boolean): Promise<boolean>;
}

/** Ranks hold different parameters: a bug or corrupted memory, not retryable. */
export class DivergenceError extends NumericError {
  override readonly name: string = 'DivergenceError';
}

/** Phases of a collective step as timed by PhaseTimer (benchmarks). */
export type TimedPhase = 'reduce_scatter' | 'norm_threshold' | 'optimizer' | 'all_gather' | 'all_reduce';
/** Optional observer of the wall time of each phase of a step (seconds; a phase may be reported twice per step). */
export type PhaseTimer = (phase: TimedPhase, seconds: number) => void;

/** Returns mark(phase): reports the time since the previous mark (or creation) to `timer`. */
function phaseClock(timer: PhaseTimer | undefined): (phase: TimedPhase) => void {
  if (timer === undefined) return () => undefined;
  let t = performance.now();
  return (phase) => {
    const now = performance.now();
    timer(phase, (now - t) / 1000);
    t = now;
  };
}

/** World size 1: the single-process update. */
export class LocalCollective implements Collective {
  readonly rank = 0;
  readonly worldSize = 1;
  readonly optimizerRange: Range;
  private readonly updater: Updater;
  readonly state: OptimizerState;

  constructor(layout: ParamLayout, cfg: MethodConfig, hp: OptimizerParams, schedule: ScheduleParams) {
    this.updater = new Updater(layout, cfg, hp, schedule);
    this.state = createOptimizerState(hp.kind, layout.size);
    this.optimizerRange = { lo: 0, hi: layout.size };
  }

  async step({ step, params, localSum, microBatches }: StepInput): Promise<UpdateResult> {
    for (let i = 0; i < localSum.length; i++) localSum[i] = localSum[i]! / microBatches;
    return this.updater.update(step, params, localSum, this.state);
  }

  async checkConsistency(_step: number, params: Float32Array): Promise<string> {
    return hashParams(params);
  }

  async gatherOptimizer(): Promise<OptimizerState> {
    return this.state;
  }

  loadOptimizer(full: OptimizerState): void {
    this.state.step = full.step;
    this.state.m.set(full.m);
    this.state.v.set(full.v);
  }

  async agreeToStop(_step: number, local: boolean): Promise<boolean> {
    return local;
  }
}

/** Exchange one stop flag per rank for (step) and return whether any is set. */
async function exchangeStop(transport: Transport, step: number, local: boolean): Promise<boolean> {
  const mine = new Uint8Array([local ? 1 : 0]);
  const sent = quiet(transport.broadcast(step, 'progress', 1, mine));
  const others = Array.from({ length: transport.worldSize }, (_, j) => j).filter((j) => j !== transport.rank);
  const got = await Promise.all(others.map((j) => transport.recv(j, step, 'progress', 1)));
  await sent;
  return local || got.some((b) => b.byteLength === 1 && b[0] === 1);
}

/**
 * Marks a send as handled and returns it. A send runs concurrently with the recvs of its phase; when a
 * recv fails first (an abort), the send is never awaited, and its later rejection — the same abort —
 * must not become an unhandled rejection that crashes the process with a non-retryable exit code.
 */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/** The reference protocol over a Transport (see the file comment). */
export class ShardedCollective implements Collective {
  readonly rank: number;
  readonly worldSize: number;
  readonly shards: readonly Range[];
  readonly optimizerRange: Range;
  /** Optimizer state: this rank's shard (sharded) or the whole vector (gradient mode). */
  readonly state: OptimizerState;
  private readonly replicated: boolean;
  private readonly grad: Float32Array;
  private readonly keep: Uint8Array;
  private readonly staticKeep: Uint8Array | undefined;

  constructor(
    private readonly transport: Transport,
    private readonly layout: ParamLayout,
    private readonly cfg: MethodConfig,
    private readonly hp: OptimizerParams,
    private readonly schedule: ScheduleParams,
    private readonly timer?: PhaseTimer,
  ) {
    this.rank = transport.rank;
    this.worldSize = transport.worldSize;
    this.shards = shardRanges(layout.size, this.worldSize);
    // Gradient mode with a mask needs every rank to run the optimizer on the full masked Γ.
    this.replicated = masksGradient(cfg);
    const own = this.shards[this.rank]!;
    this.optimizerRange = this.replicated ? { lo: 0, hi: layout.size } : own;
    this.state = createOptimizerState(hp.kind, this.optimizerRange.hi - this.optimizerRange.lo);
    this.grad = new Float32Array(layout.size);
    this.keep = new Uint8Array(layout.size);
    this.staticKeep = staticKeepMask(layout, cfg);
  }

  /** Optimizer-state bytes this rank saves compared with a replicated optimizer. */
  get optimizerBytesSaved(): number {
    const per = this.hp.kind === 'adamw' ? 8 : 4;
    return (this.layout.size - (this.optimizerRange.hi - this.optimizerRange.lo)) * per;
  }

  private others(): number[] {
    return Array.from({ length: this.worldSize }, (_, j) => j).filter((j) => j !== this.rank);
  }

  /** Broadcast `data` and receive every other rank's message of the same (step, phase, tag). */
  private async allGather(
    step: number,
    phase: 'norm' | 'threshold' | 'all_gather' | 'hash',
    tag: number,
    data: Uint8Array,
  ): Promise<Array<Uint8Array | undefined>> {
    const sent = quiet(this.transport.broadcast(step, phase, tag, data));
    const got = await Promise.all(this.others().map((j) => this.transport.recv(j, step, phase, tag)));
    await sent;
    const out = new Array<Uint8Array | undefined>(this.worldSize);
    this.others().forEach((j, i) => {
      out[j] = got[i];
    });
    out[this.rank] = data;
    return out;
  }

  /** Reduce-scatter: own shard of Γ = (0 + c₀ + c₁ + … + c_{N−1}) / M, fp32 after every add. */
  private async reduceScatter(step: number, localSum: Float32Array, M: number): Promise<void> {
    const { lo, hi } = this.shards[this.rank]!;
    const sends = this.others().map((j) => {
      const s = this.shards[j]!;
      return quiet(this.transport.send(j, step, 'reduce_scatter', 0, bytesOf(localSum.subarray(s.lo, s.hi))));
    });
    const parts = await Promise.all(this.others().map((j) => this.transport.recv(j, step, 'reduce_scatter', 0)));
    await Promise.all(sends);
    const byRank = new Array<Float32Array>(this.worldSize);
    this.others().forEach((j, i) => {
      byRank[j] = f32(parts[i]!, hi - lo, `reduce-scatter from rank ${j}`);
    });
    byRank[this.rank] = localSum.subarray(lo, hi);
    const g = this.grad;
    g.fill(0, lo, hi);
    for (let j = 0; j < this.worldSize; j++) {
      const c = byRank[j]!;
      for (let i = 0; i < c.length; i++) g[lo + i] = g[lo + i]! + c[i]!;
    }
    for (let i = lo; i < hi; i++) g[i] = g[i]! / M;
  }

  /** Scopes of the method with this rank's pieces (values of Γ, or random-key ranges). */
  private scopes(step: number): ScopeView[] {
    const { lo, hi } = this.shards[this.rank]!;
    const slots = this.layout.slots;
    const ranksOf = (a: number, b: number) => this.shards.map((s, j) => (s.lo < b && a < s.hi ? j : -1)).filter((j) => j >= 0);
    const keys = this.cfg.method === 'random';
    const piecesOf = (slotIndices: number[]): Piece[] =>
      slotIndices.flatMap((si): Piece[] => {
        const s = slots[si]!;
        const a = Math.max(lo, s.offset),
          b = Math.min(hi, s.offset + s.size);
        if (a >= b) return [];
        const out = this.keep.subarray(a, b);
        if (keys) return [{ kind: 'keys', range: { words: randomKeyWords(this.cfg.seed, step, si), start: a - s.offset, end: b - s.offset }, out }];
        return [{ kind: 'values', values: this.grad.subarray(a, b), out }];
      });
    if (this.cfg.maskScope === 'global') {
      return [{ index: 0, size: this.layout.size, ranks: ranksOf(0, this.layout.size), pieces: piecesOf(slots.map((_, i) => i)) }];
    }
    return slots.map((s, i) => ({ index: i, size: s.size, ranks: ranksOf(s.offset, s.offset + s.size), pieces: piecesOf([i]) }));
  }

  async step({ step, params, localSum, microBatches }: StepInput): Promise<UpdateResult> {
    const { cfg, layout } = this;
    const { lo, hi } = this.shards[this.rank]!;
    const lr = lrAt(step, this.schedule);
    const mark = phaseClock(this.timer);
    await this.reduceScatter(step, localSum, microBatches);
    mark('reduce_scatter');
    const g = this.grad;
    const norm = await this.exchangeNorm(step);
    if (norm.bad !== undefined) return nonFiniteOutcome(layout, cfg, step, norm.bad.index, norm.bad.value, lr);
    const clipCoef = clipInPlace(g, norm.gradNorm, cfg.maxGradNorm, lo, hi);
    const { masked, thresholds } = await this.ownKeepMask(step);
    mark('norm_threshold');
    // Apply: the sharded optimizer on the own shard, or (replicated) the masked Γ for every rank.
    if (this.replicated) {
      applyMaskInPlace(g.subarray(lo, hi), this.keep.subarray(lo, hi));
    } else {
      optimizerStep(this.hp, this.state, params, g, lr, masked ? this.keep : undefined, lo, hi, 0);
    }
    const msg = this.encodeShard(this.replicated ? g : params, thresholds);
    mark('optimizer');
    const { kept, allThresholds } = await this.gatherShards(step, msg, this.replicated ? g : params);
    mark('all_gather');
    if (this.replicated) optimizerStep(this.hp, this.state, params, g, lr, undefined);
    mark('optimizer');
    const threshold = cfg.method !== 'gmt' ? NaN : median(allThresholds);
    return { applied: true, skipReason: undefined, gradNorm: norm.gradNorm, clipCoef, lr, kept, keptRatio: kept / layout.size, threshold, masks: undefined };
  }

  /**
   * The non-finite check and the canonical norm of Γ: every rank sends [badIndex (−1 if none),
   * badValue, ...block partials] of its shard; the first bad entry in rank order wins.
   */
  private async exchangeNorm(step: number): Promise<{ gradNorm: number; bad: { index: number; value: number } | undefined }> {
    const { lo, hi } = this.shards[this.rank]!;
    const g = this.grad;
    const bad = findNonFinite(g.subarray(lo, hi));
    const partials = blockSumSquares(g, lo, hi);
    const normMsg = new Float64Array(2 + partials.length);
    normMsg[0] = bad >= 0 ? lo + bad : -1;
    normMsg[1] = bad >= 0 ? g[lo + bad]! : 0;
    normMsg.set(partials, 2);
    const normAll = (await this.allGather(step, 'norm', 0, bytesOf(normMsg))).map((b, j) => f64(b!, `norm partials from rank ${j}`));
    const firstBad = normAll.find((m) => m[0]! >= 0);
    if (firstBad !== undefined) return { gradNorm: NaN, bad: { index: firstBad[0]!, value: firstBad[1]! } };
    return { gradNorm: normFromPartials(normAll.map((m) => m.subarray(2))), bad: undefined };
  }

  /**
   * The keep-mask of the own shard into this.keep: collective exact selection for the per-step
   * methods (with the (scope, threshold) pairs this rank reports: each scope once, by the lowest
   * rank holding it), the static mask (HFT), or all ones (dense methods: `masked` false).
   */
  private async ownKeepMask(step: number): Promise<{ masked: boolean; thresholds: Array<[number, number]> }> {
    const { cfg } = this;
    const { lo, hi } = this.shards[this.rank]!;
    const thresholds: Array<[number, number]> = [];
    if (masksEveryStep(cfg)) {
      const scopes = this.scopes(step);
      const sel = await selectScopes(
        this.rank,
        scopes,
        cfg.maskRatio,
        cfg.tieRule === 'exact',
        cfg.method === 'random',
        async (round, mine) => {
          const got = await this.allGather(step, 'threshold', round, bytesOf(mine));
          return got.map((b, j) => (b === undefined || j === this.rank ? undefined : u32(b, `histograms from rank ${j}`)));
        },
        this.worldSize,
      );
      for (const s of sel)
        if (cfg.method === 'gmt' && scopes[s.index]!.ranks[0] === this.rank)
          thresholds.push([s.index, new Float32Array(new Uint32Array([s.threshold.thresholdBits]).buffer)[0]!]);
      return { masked: true, thresholds };
    }
    if (this.staticKeep !== undefined) {
      this.keep.set(this.staticKeep.subarray(lo, hi), lo);
      return { masked: true, thresholds };
    }
    this.keep.fill(1, lo, hi);
    return { masked: false, thresholds };
  }

  /** The all-gather message of the own shard: u32 header length, header [kept, nThresholds, (scope, threshold)...] as f64, the masked payload of `values`. */
  private encodeShard(values: Float32Array, thresholds: ReadonlyArray<readonly [number, number]>): Uint8Array {
    const { lo, hi } = this.shards[this.rank]!;
    const payload = encodeMasked(values, this.keep, lo, hi);
    const head = new Float64Array(2 + 2 * thresholds.length);
    head[0] = keptIn(this.keep, lo, hi);
    head[1] = thresholds.length;
    thresholds.forEach(([s, t], i) => {
      head[2 + 2 * i] = s;
      head[3 + 2 * i] = t;
    });
    const msg = new Uint8Array(4 + head.byteLength + payload.byteLength);
    new DataView(msg.buffer).setUint32(0, head.length, true);
    msg.set(bytesOf(head), 4);
    msg.set(payload, 4 + head.byteLength);
    return msg;
  }

  /** The masked all-gather: every other rank's shard decoded into `into`; the kept total and all reported thresholds. */
  private async gatherShards(step: number, msg: Uint8Array, into: Float32Array): Promise<{ kept: number; allThresholds: number[] }> {
    const all = await this.allGather(step, 'all_gather', 0, msg);
    let kept = 0;
    const allThresholds: number[] = [];
    all.forEach((m, j) => {
      if (m === undefined) throw new RetryableError(`all-gather: no message from rank ${j}`);
      const hl = new DataView(m.buffer, m.byteOffset, m.byteLength).getUint32(0, true);
      if (4 + hl * 8 > m.byteLength) throw new RetryableError(`all-gather from rank ${j}: truncated header`);
      const h = f64(m.subarray(4, 4 + hl * 8), `all-gather header from rank ${j}`);
      kept += h[0]!;
      for (let i = 0; i < h[1]!; i++) allThresholds.push(h[3 + 2 * i]!);
      if (j === this.rank) return;
      const s = this.shards[j]!;
      const n = decodeMasked(m.subarray(4 + hl * 8), into, s.lo, s.hi, this.replicated, `all-gather from rank ${j}`);
      if (n !== h[0]) throw new RetryableError(`all-gather from rank ${j}: ${n} values for ${h[0]} kept`);
    });
    return { kept, allThresholds };
  }

  async checkConsistency(step: number, params: Float32Array): Promise<string> {
    const mine = hashParams(params);
    const all = await this.allGather(step, 'hash', 0, new TextEncoder().encode(mine));
    const hashes = all.map((b) => new TextDecoder().decode(b));
    const differ = hashes.map((h, j) => (h !== mine ? j : -1)).filter((j) => j >= 0);
    if (differ.length > 0)
      throw new DivergenceError(
        `parameters diverged at step ${step}: rank ${this.rank} hash ${mine}, ranks ${differ.join(', ')} differ (${differ.map((j) => hashes[j]).join(', ')})`,
      );
    return mine;
  }

  async gatherOptimizer(step: number): Promise<OptimizerState | undefined> {
    if (this.replicated) return this.rank === 0 ? this.state : undefined;
    const { m, v } = this.state;
    if (this.rank !== 0) {
      await this.transport.send(0, step, 'checkpoint', 0, bytesOf(m));
      if (v.length > 0) await this.transport.send(0, step, 'checkpoint', 1, bytesOf(v));
      return undefined;
    }
    const full = createOptimizerState(this.hp.kind, this.layout.size);
    full.step = this.state.step;
    full.m.set(m, 0);
    full.v.set(v, 0);
    for (const j of this.others()) {
      const s = this.shards[j]!;
      full.m.set(f32(await this.transport.recv(j, step, 'checkpoint', 0), s.hi - s.lo, `optimizer m from rank ${j}`), s.lo);
      if (full.v.length > 0) full.v.set(f32(await this.transport.recv(j, step, 'checkpoint', 1), s.hi - s.lo, `optimizer v from rank ${j}`), s.lo);
    }
    return full;
  }

  loadOptimizer(full: OptimizerState): void {
    const { lo, hi } = this.optimizerRange;
    this.state.step = full.step;
    this.state.m.set(full.m.subarray(lo, hi));
    if (this.state.v.length > 0) this.state.v.set(full.v.subarray(lo, hi));
  }

  agreeToStop(step: number, local: boolean): Promise<boolean> {
    return exchangeStop(this.transport, step, local);
  }
}

/** The test reference: a dense all-reduce (every rank sums every rank's Γ in rank order), then the single-process update. */
export class DenseCollective implements Collective {
  readonly rank: number;
  readonly worldSize: number;
  readonly optimizerRange: Range;
  private readonly local: LocalCollective;

  constructor(
    private readonly transport: Transport,
    layout: ParamLayout,
    cfg: MethodConfig,
    hp: OptimizerParams,
    schedule: ScheduleParams,
    private readonly timer?: PhaseTimer,
  ) {
    this.rank = transport.rank;
    this.worldSize = transport.worldSize;
    this.local = new LocalCollective(layout, cfg, hp, schedule);
    this.optimizerRange = { lo: 0, hi: layout.size };
  }

  async step(input: StepInput): Promise<UpdateResult> {
    const { step, localSum } = input;
    const mark = phaseClock(this.timer);
    const sent = quiet(this.transport.broadcast(step, 'reduce_scatter', 0, bytesOf(localSum)));
    const parts: Float32Array[] = [];
    for (let j = 0; j < this.worldSize; j++)
      parts.push(
        j === this.rank ? localSum.slice() : f32(await this.transport.recv(j, step, 'reduce_scatter', 0), localSum.length, `dense all-reduce from rank ${j}`),
      );
    await sent;
    localSum.fill(0);
    for (const p of parts) for (let i = 0; i < p.length; i++) localSum[i] = localSum[i]! + p[i]!;
    mark('all_reduce');
    const result = await this.local.step(input);
    mark('optimizer');
    return result;
  }

  async checkConsistency(step: number, params: Float32Array): Promise<string> {
    return this.local.checkConsistency(step, params);
  }

  async gatherOptimizer(): Promise<OptimizerState | undefined> {
    return this.rank === 0 ? this.local.state : undefined;
  }

  loadOptimizer(full: OptimizerState): void {
    this.local.loadOptimizer(full);
  }

  agreeToStop(step: number, local: boolean): Promise<boolean> {
    return exchangeStop(this.transport, step, local);
  }
}
