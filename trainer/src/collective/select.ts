/**
 * Exact top-k selection over scopes that may span several ranks' shards (docs/architecture.md §3 step 3):
 * every rank histograms its pieces of each scope with the radix-select passes, the ranks exchange
 * the integer histograms of the scopes that are split between shards, and every rank advances the
 * same state machine, so all derive the same T_k and tie quotas. Scopes inside one shard need no
 * communication. Works on gradient saliencies (GMT) and on random keys (Random Mask) alike.
 */
import {
  type KeyRange,
  type PassSpec,
  type RadixSelectDone,
  type RadixSelectRunning,
  type RadixSelectState,
  SELECT_PASSES,
  advance,
  computeMaskInto,
  createSelectState,
  histogram,
  keepCount,
  passSpec,
  randomKeyHistogram,
  randomMaskInto,
  tieQuotas,
} from '../masking/index.js';
import { RetryableError } from '../errors.js';

/** A contiguous run of entries of a scope on this rank: gradient values or random-key ranges. */
export type Piece =
  | { readonly kind: 'values'; readonly values: Float32Array; readonly out: Uint8Array }
  | { readonly kind: 'keys'; readonly range: KeyRange; readonly out: Uint8Array };

/** One scope (a tensor, or the whole model) as this rank sees it. */
export interface ScopeView {
  readonly index: number;
  readonly size: number;
  /** Ranks holding part of the scope, ascending (flat-index order). */
  readonly ranks: readonly number[];
  /** This rank's pieces, in flat-index order (empty when the rank holds none). */
  readonly pieces: readonly Piece[];
}

/** Exchange one round's histogram message with every other rank; returns the messages by rank. */
export type HistogramExchange = (round: number, mine: Uint32Array) => Promise<ReadonlyArray<Uint32Array | undefined>>;

/** The outcome for one scope touched by this rank. */
export interface ScopeSelection {
  readonly index: number;
  readonly threshold: RadixSelectDone;
  readonly kept: number;
}

function pieceHistogram(p: Piece, spec: PassSpec): Uint32Array {
  return p.kind === 'values' ? histogram(p.values, spec) : randomKeyHistogram(p.range, spec);
}

function sumInto(acc: Uint32Array, h: Uint32Array): void {
  for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + h[i]!;
}

/** The selection's state over the rounds, shared by the named steps below. */
interface SelectRun {
  readonly rank: number;
  readonly worldSize: number;
  /** Scopes this rank holds pieces of, and scopes split between ranks. */
  readonly mine: readonly ScopeView[];
  readonly split: readonly ScopeView[];
  readonly states: Map<number, RadixSelectState>;
  /** Per scope: the last pass's histogram of each own piece, and of each rank (split scopes). */
  readonly lastPieceHists: Map<number, Uint32Array[]>;
  readonly lastRankHists: Map<number, Map<number, Uint32Array>>;
}

/**
 * Select T_k for every scope this rank touches and write the keep-masks of its pieces. `exact`
 * keeps exactly k (ties by flat index, across ranks in rank order); otherwise all ties are kept.
 * Random keys always use the exact rule (a mask of exactly the ratio).
 */
export async function selectScopes(
  rank: number,
  scopes: readonly ScopeView[],
  maskRatio: number,
  exact: boolean,
  keys: boolean,
  exchange: HistogramExchange | undefined,
  worldSize: number,
): Promise<ScopeSelection[]> {
  const mine = scopes.filter((s) => s.pieces.length > 0);
  const split = scopes.filter((s) => s.ranks.length > 1);
  // Every rank tracks the scopes it touches and every split scope (it receives all their histograms),
  // so all ranks agree on which histograms each message holds.
  const tracked = [...new Set([...mine, ...split])].sort((a, b) => a.index - b.index);
  const run: SelectRun = { rank, worldSize, mine, split, states: new Map(), lastPieceHists: new Map(), lastRankHists: new Map() };
  for (const s of tracked) run.states.set(s.index, createSelectState(s.size, keepCount(s.size, maskRatio), { checkNonFinite: !keys }));
  for (let round = 0; round < SELECT_PASSES; round++) {
    const own = ownHistograms(run);
    const others =
      exchange !== undefined && split.length > 0 ? await exchangeSplit(run, round, own, exchange) : new Map<number, ReadonlyArray<Uint32Array | undefined>>();
    advanceScopes(run, round, tracked, own, others);
  }
  return mine.map((s) => maskPieces(run, s, exact || keys));
}

function running(run: SelectRun, s: ScopeView): RadixSelectRunning | undefined {
  const st = run.states.get(s.index)!;
  return st.status === 'running' ? st : undefined;
}

/** This round's histogram of every running scope this rank touches (summed over its pieces). */
function ownHistograms(run: SelectRun): Map<number, Uint32Array> {
  const own = new Map<number, Uint32Array>();
  for (const s of run.mine) {
    const st = running(run, s);
    if (st === undefined) continue;
    const spec = passSpec(st);
    const hs = s.pieces.map((p) => pieceHistogram(p, spec));
    const acc = new Uint32Array(spec.bins);
    for (const h of hs) sumInto(acc, h);
    own.set(s.index, acc);
    run.lastPieceHists.set(s.index, hs);
  }
  return own;
}

/**
 * Exchange the split scopes' histograms: this rank's message lists its running split scopes in
 * scope order; each sender's message is parsed with the scopes it touches that are still running
 * (the same states on every rank). Returns, per other rank, its histograms by scope index.
 */
async function exchangeSplit(
  run: SelectRun,
  round: number,
  own: ReadonlyMap<number, Uint32Array>,
  exchange: HistogramExchange,
): Promise<Map<number, ReadonlyArray<Uint32Array | undefined>>> {
  const parts = run.split.filter((s) => own.has(s.index)).map((s) => own.get(s.index)!);
  const msg = new Uint32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    msg.set(p, o);
    o += p.length;
  }
  const got = await exchange(round, msg);
  const others = new Map<number, ReadonlyArray<Uint32Array | undefined>>();
  for (let j = 0; j < run.worldSize; j++) {
    if (j === run.rank) continue;
    const m = got[j];
    if (m === undefined) continue;
    let off = 0;
    const list: Array<Uint32Array | undefined> = [];
    for (const s of run.split) {
      if (!s.ranks.includes(j)) continue;
      const st = running(run, s);
      if (st === undefined) continue;
      const bins = passSpec(st).bins;
      if (off + bins > m.length) throw new RetryableError(`collective threshold: histogram message from rank ${j} is too short (round ${round})`);
      list[s.index] = m.subarray(off, off + bins);
      off += bins;
    }
    if (off !== m.length)
      throw new RetryableError(`collective threshold: histogram message from rank ${j} has ${m.length} counts, expected ${off} (round ${round})`);
    others.set(j, list);
  }
  return others;
}

/** Advance every running scope with its histogram summed over the ranks holding it. */
function advanceScopes(
  run: SelectRun,
  round: number,
  tracked: readonly ScopeView[],
  own: ReadonlyMap<number, Uint32Array>,
  others: ReadonlyMap<number, ReadonlyArray<Uint32Array | undefined>>,
): void {
  for (const s of tracked) {
    const st = running(run, s);
    if (st === undefined) continue;
    const ownHist = own.get(s.index);
    const acc = ownHist !== undefined ? ownHist.slice() : new Uint32Array(passSpec(st).bins);
    const perRank = new Map<number, Uint32Array>(ownHist !== undefined ? [[run.rank, ownHist]] : []);
    if (s.ranks.length > 1) {
      for (const j of s.ranks) {
        if (j === run.rank) continue;
        const h = others.get(j)?.[s.index];
        if (h === undefined) throw new RetryableError(`collective threshold: no histogram from rank ${j} for scope ${s.index} (round ${round})`);
        sumInto(acc, h);
        perRank.set(j, h);
      }
    }
    run.lastRankHists.set(s.index, perRank);
    run.states.set(s.index, advance(st, acc));
  }
}

/**
 * The keep-masks of this rank's pieces of a finished scope. With `useQuota`, the ties at T_k are
 * split exactly: first among the ranks (in rank order), then among this rank's pieces.
 */
function maskPieces(run: SelectRun, s: ScopeView, useQuota: boolean): ScopeSelection {
  const { rank } = run;
  const st = run.states.get(s.index)!;
  if (st.status !== 'done') throw new RetryableError(`collective threshold: scope ${s.index} did not finish (${st.status})`);
  let pieceQuotas: number[] | undefined;
  if (useQuota && st.lastBin >= 0) {
    const perRank = run.lastRankHists.get(s.index) ?? new Map<number, Uint32Array>();
    const equal = s.ranks.map((j) => perRank.get(j)?.[st.lastBin] ?? 0);
    const rankQuota = s.ranks.length > 1 ? tieQuotas(st.k, st.countAbove, equal)[s.ranks.indexOf(rank)]! : st.k - st.countAbove;
    const pieceEqual = (run.lastPieceHists.get(s.index) ?? []).map((h) => h[st.lastBin] ?? 0);
    const below = pieceEqual.reduce((a, b) => a + b, 0);
    // tieQuotas over this rank's pieces with a virtual "count above" that leaves exactly rankQuota.
    pieceQuotas = tieQuotas(rankQuota, 0, pieceEqual.length > 0 ? pieceEqual : [0]);
    if (rankQuota > below) throw new RetryableError(`collective threshold: tie quota ${rankQuota} exceeds ${below} ties on rank ${rank}`);
  }
  let kept = 0;
  s.pieces.forEach((p, i) => {
    const q = pieceQuotas?.[i] ?? 0;
    kept +=
      p.kind === 'values' ? computeMaskInto(p.values, st.thresholdBits, useQuota ? q : undefined, p.out) : randomMaskInto(p.range, st.thresholdBits, q, p.out);
  });
  return { index: s.index, threshold: st, kept };
}
