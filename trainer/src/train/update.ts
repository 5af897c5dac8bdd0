/**
 * One optimizer update from the averaged gradient Γ (ARCHITECTURE §2): non-finite check, global-norm
 * clipping on the full Γ, the method's keep-mask, then the optimizer in maskMode "update" (masked
 * entries and their state untouched) or "gradient" (masked Γ zeroed, optimizer unchanged).
 * Pure apart from mutating params, Γ and the optimizer state it is given; no I/O.
 */
import { NumericError } from '../errors.js';
import { type MaskSet, type NamedTensor, applyMaskInPlace, computeMasks, computeRandomMasks, findNonFinite, hftFrozenNames } from '../masking/index.js';
import type { ParamLayout } from '../model/params.js';
import { canonicalNorm } from '../collective/shards.js';
import { clipCoefficient, scaleInPlace } from '../optim/clip.js';
import { type OptimizerParams, type OptimizerState, optimizerStep } from '../optim/optimizer.js';
import { type ScheduleParams, lrAt, warmupStepsFor } from '../optim/schedule.js';
import type { TrainerConfig } from '../../../contract/config.js';

/** The method-related part of the config. */
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
  /** Full mask statistics for threshold/random methods. */
  readonly masks: MaskSet | undefined;
}

/** Optimizer hyper-parameters from the config. */
export function optimizerParams(c: TrainerConfig): OptimizerParams {
  return { kind: c.optimizer, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: c.weightDecay, momentum: c.momentum };
}

/** Schedule parameters from the config. */
export function scheduleParams(c: TrainerConfig): ScheduleParams {
  return { lr: c.lr, kind: c.schedule, warmupSteps: warmupStepsFor(c.steps, c.warmupRatio), totalSteps: c.steps, minLrRatio: c.minLrRatio };
}

/** HFT's static keep-mask over the flat vector (1 = trainable), chosen once per run from the seed. */
export function hftKeepMask(layout: ParamLayout, seed: number): { keep: Uint8Array; frozen: readonly string[] } {
  const frozen = hftFrozenNames(
    layout.slots.map((s) => s.name),
    seed,
  );
  const keep = new Uint8Array(layout.size).fill(1);
  for (const name of frozen) {
    const s = layout.slot(name);
    keep.fill(0, s.offset, s.offset + s.size);
  }
  return { keep, frozen };
}

/** Median of a list (NaN when empty). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function flatten(layout: ParamLayout, set: MaskSet, into: Uint8Array): void {
  layout.slots.forEach((s, i) => into.set(set.masks[i]!, s.offset));
}

/** Reusable buffers and static masks for a run's updates. */
export class Updater {
  private readonly keep: Uint8Array;
  private readonly hft: Uint8Array | undefined;

  constructor(
    private readonly layout: ParamLayout,
    private readonly cfg: MethodConfig,
    private readonly hp: OptimizerParams,
    private readonly schedule: ScheduleParams,
  ) {
    this.keep = new Uint8Array(layout.size);
    this.hft = cfg.method === 'hft' ? hftKeepMask(layout, cfg.seed).keep : undefined;
  }

  /** Apply optimizer step `step` (0-based) with Γ = `grad` (averaged over all micro-batches). */
  update(step: number, params: Float32Array, grad: Float32Array, state: OptimizerState): UpdateResult {
    const { cfg, layout } = this;
    const lr = lrAt(step, this.schedule);
    const bad = findNonFinite(grad);
    if (bad >= 0) {
      const slot = layout.slots.find((s) => bad >= s.offset && bad < s.offset + s.size);
      const where = `${slot?.name ?? '?'}[${bad - (slot?.offset ?? 0)}] = ${grad[bad]}`;
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
    const gradNorm = canonicalNorm(grad); // block-wise, so N-rank runs get the same bits
    const clipCoef = clipCoefficient(gradNorm, cfg.maxGradNorm);
    scaleInPlace(grad, clipCoef);

    let masks: MaskSet | undefined;
    let keep: Uint8Array | undefined;
    let threshold = NaN;
    switch (cfg.method) {
      case 'gmt': {
        const tensors: NamedTensor[] = layout.slots.map((s) => ({ name: s.name, values: grad.subarray(s.offset, s.offset + s.size) }));
        masks = computeMasks(tensors, { maskRatio: cfg.maskRatio, scope: cfg.maskScope, tieRule: cfg.tieRule });
        threshold = cfg.maskScope === 'global' ? (masks.scopes[0]?.threshold ?? NaN) : median(masks.scopes.map((s) => s.threshold));
        break;
      }
      case 'random':
        masks = computeRandomMasks(
          layout.slots.map((s) => ({ name: s.name, size: s.size })),
          { seed: cfg.seed, step, maskRatio: cfg.maskRatio, scope: cfg.maskScope },
        );
        break;
      case 'hft':
        keep = this.hft;
        break;
      case 'sft':
      case 'oneoff':
        break;
    }
    if (masks !== undefined) {
      flatten(layout, masks, this.keep);
      keep = this.keep;
    }
    if (keep !== undefined && cfg.maskMode === 'gradient' && cfg.method !== 'hft') {
      applyMaskInPlace(grad, keep);
      optimizerStep(this.hp, state, params, grad, lr, undefined);
    } else {
      optimizerStep(this.hp, state, params, grad, lr, keep);
    }
    let kept = layout.size;
    if (keep !== undefined) {
      kept = 0;
      for (let i = 0; i < keep.length; i++) kept += keep[i]!;
    }
    return { applied: true, skipReason: undefined, gradNorm, clipCoef, lr, kept, keptRatio: kept / layout.size, threshold, masks };
  }
}
