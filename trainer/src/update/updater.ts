/**
 * One optimizer update from the averaged gradient Γ in a single process (docs/architecture.md §2):
 * non-finite check, global-norm clipping on the full Γ, the method's keep-mask, then the optimizer
 * in maskMode "update" (masked entries and their state untouched) or "gradient" (masked Γ zeroed,
 * optimizer unchanged). The sharded collective runs the same steps over N ranks with the shared
 * pieces of method.ts. Pure apart from mutating params, Γ and the optimizer state it is given.
 */
import { type MaskSet, type NamedTensor, applyMaskInPlace, computeMasks, computeRandomMasks, findNonFinite } from '../masking/index.js';
import type { ParamLayout } from '../model/params.js';
import { type OptimizerParams, type OptimizerState, optimizerStep } from '../optim/optimizer.js';
import { type ScheduleParams, lrAt } from '../optim/schedule.js';
import { type MethodConfig, type UpdateResult, clipInPlace, keptIn, masksGradient, median, nonFiniteOutcome, staticKeepMask } from './method.js';
import { canonicalNorm } from './norm.js';

/** Reusable buffers and static masks for a run's updates. */
export class Updater {
  private readonly keep: Uint8Array;
  private readonly staticKeep: Uint8Array | undefined;

  constructor(
    private readonly layout: ParamLayout,
    private readonly cfg: MethodConfig,
    private readonly hp: OptimizerParams,
    private readonly schedule: ScheduleParams,
  ) {
    this.keep = new Uint8Array(layout.size);
    this.staticKeep = staticKeepMask(layout, cfg);
  }

  /** Apply optimizer step `step` (0-based) with Γ = `grad` (averaged over all micro-batches). */
  update(step: number, params: Float32Array, grad: Float32Array, state: OptimizerState): UpdateResult {
    const { cfg, layout } = this;
    const lr = lrAt(step, this.schedule);
    const bad = findNonFinite(grad);
    if (bad >= 0) return nonFiniteOutcome(layout, cfg, step, bad, grad[bad]!, lr);
    const gradNorm = canonicalNorm(grad); // block-wise, so N-rank runs get the same bits
    const clipCoef = clipInPlace(grad, gradNorm, cfg.maxGradNorm);

    const masks = this.stepMasks(step, grad);
    let keep = this.staticKeep;
    if (masks !== undefined) {
      layout.slots.forEach((s, i) => this.keep.set(masks.masks[i]!, s.offset));
      keep = this.keep;
    }
    if (keep !== undefined && masksGradient(cfg)) {
      applyMaskInPlace(grad, keep);
      optimizerStep(this.hp, state, params, grad, lr, undefined);
    } else {
      optimizerStep(this.hp, state, params, grad, lr, keep);
    }
    const kept = keep === undefined ? layout.size : keptIn(keep);
    const threshold = cfg.method === 'gmt' && masks !== undefined ? median(masks.scopes.map((s) => s.threshold)) : NaN;
    return { applied: true, skipReason: undefined, gradNorm, clipCoef, lr, kept, keptRatio: kept / layout.size, threshold, masks };
  }

  /** This step's masks for the per-step methods (GMT's threshold on |Γ|, random keys); undefined otherwise. */
  private stepMasks(step: number, grad: Float32Array): MaskSet | undefined {
    const { cfg, layout } = this;
    if (cfg.method === 'gmt') {
      const tensors: NamedTensor[] = layout.slots.map((s) => ({ name: s.name, values: grad.subarray(s.offset, s.offset + s.size) }));
      return computeMasks(tensors, { maskRatio: cfg.maskRatio, scope: cfg.maskScope, tieRule: cfg.tieRule });
    }
    if (cfg.method === 'random')
      return computeRandomMasks(
        layout.slots.map((s) => ({ name: s.name, size: s.size })),
        { seed: cfg.seed, step, maskRatio: cfg.maskRatio, scope: cfg.maskScope },
      );
    return undefined;
  }
}
