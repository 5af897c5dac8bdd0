/**
 * The pieces of one optimizer update that the single-process Updater and the sharded collective
 * share (docs/architecture.md §2): the method's config, the non-finite skip, clipping, the static
 * keep-masks, the gradient-mode rule and the reported threshold. One copy each, so the N-rank
 * protocol cannot drift from the single-process reference.
 */
import type { TrainerConfig } from '../../../contract/config.js';
import { NumericError } from '../errors.js';
import { type MaskStats, hftFrozenNames } from '../masking/index.js';
import type { ParamLayout } from '../model/params.js';
import { clipCoefficient, scaleInPlace } from '../optim/clip.js';
import type { OptimizerParams } from '../optim/optimizer.js';
import { type ScheduleParams, warmupStepsFor } from '../optim/schedule.js';

/** The method-related part of the config (what an update and a collective step read). */
export type MethodConfig = Pick<TrainerConfig, 'method' | 'maskRatio' | 'maskScope' | 'maskMode' | 'tieRule' | 'seed' | 'nonFinite' | 'maxGradNorm'>;

/** What one update did, for logs, metrics and checkpoints. */
export interface UpdateResult {
  /** False when the step was skipped for non-finite values (nothing changed). */
  readonly applied: boolean;
  readonly skipReason: string | undefined;
  /** Global L2 norm of Γ before clipping (NaN when skipped). */
  readonly gradNorm: number;
  readonly clipCoef: number;
  readonly lr: number;
  /** Entries updated this step and their fraction of all parameters. */
  readonly kept: number;
  readonly keptRatio: number;
  /** T_k: the global threshold, or the median of per-tensor thresholds (NaN for non-threshold methods). */
  readonly threshold: number;
  /** Full mask statistics for threshold/random methods (single process only). */
  readonly masks: MaskStats | undefined;
}

/** Optimizer hyper-parameters from the config. */
export function optimizerParams(c: TrainerConfig): OptimizerParams {
  return { kind: c.optimizer, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: c.weightDecay, momentum: c.momentum };
}

/** Schedule parameters from the config. */
export function scheduleParams(c: TrainerConfig): ScheduleParams {
  return { lr: c.lr, kind: c.schedule, warmupSteps: warmupStepsFor(c.steps, c.warmupRatio), totalSteps: c.steps, minLrRatio: c.minLrRatio };
}

/** Whether the method draws a new keep-mask every step (a threshold on |Γ| or random keys). */
export function masksEveryStep(cfg: Pick<MethodConfig, 'method'>): boolean {
  return cfg.method === 'gmt' || cfg.method === 'random';
}

/**
 * maskMode "gradient" with a per-step mask: masked entries of Γ are zeroed and the optimizer runs
 * densely (its state keeps moving); otherwise masked entries and their state are skipped. HFT's
 * static freeze always skips (a frozen tensor is never updated).
 */
export function masksGradient(cfg: Pick<MethodConfig, 'method' | 'maskMode'>): boolean {
  return cfg.maskMode === 'gradient' && masksEveryStep(cfg);
}

/** HFT's static keep-mask over the flat vector (1 = trainable), chosen once per run from the seed. */
function hftKeepMask(layout: ParamLayout, seed: number): Uint8Array {
  const keep = new Uint8Array(layout.size).fill(1);
  for (const name of hftFrozenNames(
    layout.slots.map((s) => s.name),
    seed,
  )) {
    const s = layout.slot(name);
    keep.fill(0, s.offset, s.offset + s.size);
  }
  return keep;
}

/** The run's static keep-mask: HFT's freeze, or undefined (dense methods, and per-step masks). */
export function staticKeepMask(layout: ParamLayout, cfg: Pick<MethodConfig, 'method' | 'seed'>): Uint8Array | undefined {
  return cfg.method === 'hft' ? hftKeepMask(layout, cfg.seed) : undefined;
}

/**
 * The outcome of a step whose Γ holds a non-finite value at flat index `index`: throws NumericError
 * under nonFinite "error", otherwise the skipped result (nothing changed; the loop counts it).
 */
export function nonFiniteOutcome(
  layout: ParamLayout,
  cfg: Pick<MethodConfig, 'nonFinite'>,
  step: number,
  index: number,
  value: number,
  lr: number,
): UpdateResult {
  const slot = layout.slots.find((s) => index >= s.offset && index < s.offset + s.size);
  const where = `${slot?.name ?? '?'}[${index - (slot?.offset ?? 0)}] = ${value}`;
  if (cfg.nonFinite === 'error') throw new NumericError(`non-finite gradient at step ${step}: ${where}`);
  return {
    applied: false,
    skipReason: `non-finite gradient ${where}`,
    gradNorm: NaN,
    clipCoef: 1,
    lr,
    kept: 0,
    keptRatio: 0,
    threshold: NaN,
    masks: undefined,
  };
}

/** Global-norm clipping of Γ[lo, hi) given the norm of the whole Γ; returns the coefficient applied. */
export function clipInPlace(grad: Float32Array, gradNorm: number, maxGradNorm: number, lo = 0, hi = grad.length): number {
  const coef = clipCoefficient(gradNorm, maxGradNorm);
  scaleInPlace(grad, coef, lo, hi);
  return coef;
}

/** Median of a list (NaN when empty). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Entries kept in keep[lo, hi). */
export function keptIn(keep: Uint8Array, lo = 0, hi = keep.length): number {
  let kept = 0;
  for (let i = lo; i < hi; i++) kept += keep[i]!;
  return kept;
}
