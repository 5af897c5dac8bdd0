/**
 * The `random` baseline (docs/architecture.md §2): a fresh uniformly random mask of the same ratio and scope
 * at every step, identical on every rank without communication. Each entry gets the key
 * hash32(seedWords(deriveSeed(seed, 'random-mask', step, tensorIndex)), flatIndex) >>> 1 — a pure
 * function of (seed, step, tensor, flat index) — and the scope keeps its k largest keys, found by
 * the same radix select as GMT, with ties broken by flat index (the `exact` rule) so exactly k are
 * kept. Keys are hashed on the fly in every pass, so no per-entry memory is needed and any rank can
 * compute any shard's mask by itself.
 */

import { deriveSeed, hash32, seedWords } from '../rng.js';
import { keepCount } from './keep-count.js';
import { buildMaskSet, scopeStats, type MaskScope, type MaskSet, type ScopeMaskStats } from './mask.js';
import { advance, createSelectState, passSpec, type RadixSelectState, sumHistograms, type PassSpec } from './radix-select.js';
import { selectionFromDone, type ThresholdSelection } from './select-threshold.js';

/** Settings of one step's random mask. */
export interface RandomMaskOptions {
  readonly seed: number | bigint;
  readonly step: number;
  readonly maskRatio: number;
  readonly scope: MaskScope;
}

/** A tensor's name and number of entries (random masks do not look at values). */
export interface TensorSize {
  readonly name: string;
  readonly size: number;
}

/** The flat indices [start, end) of one tensor's keys, with the tensor's key words. */
export interface KeyRange {
  readonly words: readonly [number, number];
  readonly start: number;
  readonly end: number;
}

/** Key words of (seed, step, tensorIndex): the stream "random-mask" of trainer/src/rng.ts. */
export function randomKeyWords(seed: number | bigint, step: number, tensorIndex: number): readonly [number, number] {
  return seedWords(deriveSeed(seed, 'random-mask', step, tensorIndex));
}

/** The 31-bit random key of a flat index (31 bits so it shares the saliency pass layout). */
export function randomKey(words: readonly [number, number], index: number): number {
  return hash32(words[0], words[1], index) >>> 1;
}

/** Histogram of the keys of a range for one radix-select pass (cf. histogram in radix-select.ts). */
export function randomKeyHistogram(range: KeyRange, spec: PassSpec): Uint32Array {
  const [lo, hi] = range.words;
  const h = new Uint32Array(spec.bins);
  const { shift, prefixShift, prefix } = spec;
  const mask = spec.bins - 1;
  for (let i = range.start; i < range.end; i++) {
    const x = hash32(lo, hi, i) >>> 1;
    if (x >>> prefixShift === prefix) h[(x >>> shift) & mask]!++;
  }
  return h;
}

/** Exact k-th largest key over ranges (in flat order), with per-range tie quotas (exact rule). */
export function selectRandomThreshold(ranges: readonly KeyRange[], k: number): ThresholdSelection {
  let n = 0;
  for (const r of ranges) n += r.end - r.start;
  let state: RadixSelectState = createSelectState(n, k, { checkNonFinite: false });
  let last: Uint32Array[] = ranges.map(() => new Uint32Array(0));
  while (state.status === 'running') {
    const spec = passSpec(state);
    last = ranges.map((r) => randomKeyHistogram(r, spec));
    state = advance(state, sumHistograms(last, spec.bins));
  }
  if (state.status !== 'done') throw new Error('random mask: key selection cannot be non-finite');
  return selectionFromDone(state, last);
}

/** Write the mask of a key range into `out` (out[i − start]): keys > T plus the first `tieQuota` keys == T. */
export function randomMaskInto(range: KeyRange, thresholdBits: number, tieQuota: number, out: Uint8Array): number {
  if (out.length !== range.end - range.start) throw new RangeError('random mask: output length mismatch');
  const [lo, hi] = range.words;
  let quota = tieQuota;
  let kept = 0;
  for (let i = range.start; i < range.end; i++) {
    const x = hash32(lo, hi, i) >>> 1;
    const m = x > thresholdBits || (x === thresholdBits && quota-- > 0) ? 1 : 0;
    out[i - range.start] = m;
    kept += m;
  }
  return kept;
}

/** Tensor indices grouped by scope: one group per tensor, or one group of all tensors. */
function scopeGroups(count: number, scope: MaskScope): number[][] {
  const all = Array.from({ length: count }, (_, i) => i);
  return scope === 'global' ? [all] : all.map((i) => [i]);
}

/** Random masks for every tensor of a step (exactly k = ceil((1 − r)·n) kept per scope) with stats. */
export function computeRandomMasks(tensors: readonly TensorSize[], options: RandomMaskOptions): MaskSet {
  const masks = tensors.map((t) => new Uint8Array(t.size));
  const kept = tensors.map(() => 0);
  const thresholds = tensors.map(() => 0);
  const scopes: ScopeMaskStats[] = [];
  for (const group of scopeGroups(tensors.length, options.scope)) {
    const ranges = group.map((i) => ({
      words: randomKeyWords(options.seed, options.step, i),
      start: 0,
      end: tensors[i]!.size,
    }));
    const size = ranges.reduce((a, r) => a + r.end, 0);
    const sel = selectRandomThreshold(ranges, keepCount(size, options.maskRatio));
    let scopeKept = 0;
    group.forEach((i, j) => {
      kept[i] = randomMaskInto(ranges[j]!, sel.thresholdBits, sel.quotas[j]!, masks[i]!);
      thresholds[i] = sel.threshold;
      scopeKept += kept[i];
    });
    scopes.push(scopeStats(options.scope === 'global' ? 'global' : tensors[group[0]!]!.name, sel, scopeKept));
  }
  return buildMaskSet(tensors, masks, kept, thresholds, scopes);
}

/**
 * The random mask of the flat range [start, end) of tensor `tensorIndex` alone — a shard — equal to
 * the same slice of computeRandomMasks, computed without communication (the whole scope's keys are
 * hashed locally; the range only splits the tie quota).
 */
export function computeRandomMaskRange(
  tensors: readonly TensorSize[],
  options: RandomMaskOptions,
  tensorIndex: number,
  start: number,
  end: number,
): Uint8Array {
  const target = tensors[tensorIndex];
  if (target === undefined) throw new RangeError(`random mask: no tensor ${tensorIndex}`);
  if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && 0 <= start && start <= end && end <= target.size)) {
    throw new RangeError(`random mask: bad range [${start}, ${end}) of ${target.size}`);
  }
  const group = options.scope === 'global' ? tensors.map((_, i) => i) : [tensorIndex];
  const ranges: KeyRange[] = [];
  let mine = -1;
  for (const i of group) {
    const words = randomKeyWords(options.seed, options.step, i);
    if (i !== tensorIndex) {
      ranges.push({ words, start: 0, end: tensors[i]!.size });
      continue;
    }
    ranges.push({ words, start: 0, end: start });
    mine = ranges.length;
    ranges.push({ words, start, end });
    ranges.push({ words, start: end, end: target.size });
  }
  const size = ranges.reduce((a, r) => a + r.end - r.start, 0);
  const sel = selectRandomThreshold(ranges, keepCount(size, options.maskRatio));
  const out = new Uint8Array(end - start);
  randomMaskInto(ranges[mine]!, sel.thresholdBits, sel.quotas[mine]!, out);
  return out;
}
