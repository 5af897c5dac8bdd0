/**
 * Masking: pure functions on Float32Array, no I/O. The export list is the
 * public API; the collective (docs/architecture.md §3) drives the radix-select state machine directly.
 */

export { keepCount } from './keep-count.js';
export { NON_FINITE_BITS, NonFiniteGradientError, findNonFinite } from './non-finite.js';
export type { NonFiniteKind, NonFiniteLocation } from './non-finite.js';
export {
  KEEP_NONE_BITS,
  PASS1_BINS,
  PASS1_SHIFT,
  SELECT_PASSES,
  advance,
  bitsToFloat,
  createSelectState,
  histogram,
  histogramAndCompact,
  keyOf,
  passSpec,
  sumHistograms,
  tieQuotas,
} from './radix-select.js';
export type { PassSpec, RadixSelectDone, RadixSelectNonFinite, RadixSelectRunning, RadixSelectState } from './radix-select.js';
export { assertFinite, selectThreshold } from './select-threshold.js';
export type { SelectNames, ThresholdSelection } from './select-threshold.js';
export { applyMaskInPlace, buildMaskSet, computeMask, computeMaskInto, computeMasks, countKept, maskStats, scopeStats, selectMaskThresholds } from './mask.js';
export type {
  MaskOptions,
  MaskScope,
  MaskSet,
  MaskStats,
  MaskThresholds,
  NamedTensor,
  ScopeMaskStats,
  TensorMaskStats,
  TensorThreshold,
  TieRule,
} from './mask.js';
export {
  computeRandomMaskRange,
  computeRandomMasks,
  randomKey,
  randomKeyHistogram,
  randomKeyWords,
  randomMaskInto,
  selectRandomThreshold,
} from './random-mask.js';
export type { KeyRange, RandomMaskOptions, TensorSize } from './random-mask.js';
export { HFT_CATEGORIES, hftFrozenMember, hftFrozenNames } from './hft.js';
export { oneOffDrop } from './oneoff.js';
export type { OneOffOptions, OneOffResult, OneOffTensorStats } from './oneoff.js';
