/**
 * One optimizer update from the averaged gradient Γ in a single process (docs/architecture.md §2):
 * non-finite check, global-norm clipping on the full Γ, the method's keep-mask, then the optimizer
 * in maskMode "update" (masked entries and their state untouched) or "gradient" (masked Γ zeroed,
 * optimizer unchanged). The sharded collective runs the same steps over N ranks with the shared
 * pieces of method.ts. Pure apart from mutating params, Γ and the optimizer state it is given.
 */
import {
  type MaskSet,
  type NamedTensor,
  PASS1_BINS,
  PASS1_SHIFT,
  applyMaskInPlace,
  computeMasks,
  computeRandomMasks,
  findNonFinite,
  keyOf,
  maskStats,
  selectMaskThresholds,
} from '../masking/index.js';
import type { ParamLayout } from '../model/params.js';
import { clipCoefficient } from '../optim/clip.js';
import { type OptimizerParams, type OptimizerState, adamwStepThreshold, optimizerStep } from '../optim/optimizer.js';
import { type ScheduleParams, lrAt } from '../optim/schedule.js';
import { type MethodConfig, type UpdateResult, clipInPlace, keptIn, masksGradient, median, nonFiniteOutcome, staticKeepMask } from './method.js';
import { type Pass2Speculation, canonicalNorm, canonicalNormAndHistograms } from './norm.js';

/** Reusable buffers and static masks for a run's updates. */
export class Updater {
  private readonly keep: Uint8Array;
  /** Per-tensor views of `keep`: computeMasks writes GMT's masks straight into the flat mask. */
  private readonly keepViews: readonly Uint8Array[];
  private readonly staticKeep: Uint8Array | undefined;
  /** GMT + AdamW + maskMode "update": the mask is fused into the optimizer (fusedGmtUpdate). */
  private readonly fusedGmt: boolean;
  /** Fused GMT: each tensor's radix pass-1 histogram of the unscaled |Γ|, counted in the norm's pass. */
  private readonly pass1: readonly Uint32Array[] | undefined;
  /** Fused GMT: each tensor's threshold bin of the last step, whose keys the norm's pass gathers (native path). */
  private readonly speculation: Pass2Speculation | undefined;

  constructor(
    private readonly layout: ParamLayout,
    private readonly cfg: MethodConfig,
    private readonly hp: OptimizerParams,
    private readonly schedule: ScheduleParams,
  ) {
    this.keep = new Uint8Array(layout.size);
    this.keepViews = layout.slots.map((s) => this.keep.subarray(s.offset, s.offset + s.size));
    this.staticKeep = staticKeepMask(layout, cfg);
    this.fusedGmt = cfg.method === 'gmt' && !masksGradient(cfg) && hp.kind === 'adamw';
    this.pass1 = this.fusedGmt ? layout.slots.map(() => new Uint32Array(PASS1_BINS)) : undefined;
    this.speculation = this.fusedGmt ? { bins: new Int32Array(layout.slots.length).fill(-1), found: [] } : undefined;
  }

  /** Apply optimizer step `step` (0-based) with Γ = `grad` (averaged over all micro-batches). */
  update(step: number, params: Float32Array, grad: Float32Array, state: OptimizerState): UpdateResult {
    const { cfg, layout } = this;
    const lr = lrAt(step, this.schedule);
    // The norm comes first: it is finite iff every entry is (a finite fp32 squared cannot overflow
    // fp64, nor can 2^53 of them summed), so the scan for the bad entry runs only when there is one.
    // Fused GMT counts the selection's pass-1 histograms in the norm's read of Γ.
    const gradNorm = this.pass1 !== undefined ? canonicalNormAndHistograms(grad, layout.slots, this.pass1, this.speculation) : canonicalNorm(grad); // block-wise: N-rank runs get the same bits
    const bad = Number.isFinite(gradNorm) ? -1 : findNonFinite(grad);
    if (bad >= 0) return nonFiniteOutcome(layout, cfg, step, bad, grad[bad]!, lr);
    if (this.fusedGmt) return this.fusedGmtUpdate(params, grad, state, lr, gradNorm);
    const clipCoef = clipInPlace(grad, gradNorm, cfg.maxGradNorm);

    const masks = this.stepMasks(step, grad);
    let keep = this.staticKeep;
    if (masks !== undefined) {
      // GMT's masks are views of this.keep already; random masks are copied in.
      if (cfg.method !== 'gmt') layout.slots.forEach((s, i) => this.keep.set(masks.masks[i]!, s.offset));
      keep = this.keep;
    }
    if (keep !== undefined && masksGradient(cfg)) {
      applyMaskInPlace(grad, keep);
      optimizerStep(this.hp, state, params, grad, lr, undefined);
    } else {
      optimizerStep(this.hp, state, params, grad, lr, keep);
    }
    const kept = masks !== undefined ? masks.kept : keep === undefined ? layout.size : keptIn(keep);
    const threshold = cfg.method === 'gmt' && masks !== undefined ? median(masks.scopes.map((s) => s.threshold)) : NaN;
    return { applied: true, skipReason: undefined, gradNorm, clipCoef, lr, kept, keptRatio: kept / layout.size, threshold, masks };
  }

  /**
   * GMT with AdamW in maskMode "update", fused: the selection's first pass was counted in the norm's
   * read of Γ (on the unscaled |Γ|), the clip scale is applied inside its second pass (which reads all
   * of Γ anyway; masking/select-threshold.ts maps the threshold through the clip), and the keep rule (|Γ| bits against the tensor's threshold) inside the AdamW loop, so
   * no keep-mask is written or read and Γ is not scaled in a pass of its own. The same fp32 results as
   * clip → computeMasks → optimizerStep with the mask (test/unit/update/updater.test.ts).
   */
  private fusedGmtUpdate(params: Float32Array, grad: Float32Array, state: OptimizerState, lr: number, gradNorm: number): UpdateResult {
    const { cfg, layout } = this;
    const clipCoef = clipCoefficient(gradNorm, cfg.maxGradNorm);
    const tensors = this.tensorsOf(grad);
    const spec = this.speculation;
    const th = selectMaskThresholds(tensors, { maskRatio: cfg.maskRatio, scope: cfg.maskScope, tieRule: cfg.tieRule }, clipCoef, this.pass1, spec?.found);
    // Next step's norm pass gathers the keys in the pass-1 bin of this step's unscaled threshold (a
    // guess: thresholds drift slowly; a miss costs the compaction pass it would have cost anyway).
    if (spec !== undefined) th.tensors.forEach((t, i) => (spec.bins[i] = Number.isFinite(t.threshold) ? keyOf(t.threshold / clipCoef) >>> PASS1_SHIFT : -1));
    const ranges = layout.slots.map((s, i) => ({ lo: s.offset, hi: s.offset + s.size, ...th.tensors[i]! }));
    const masks = maskStats(tensors, th, adamwStepThreshold(this.hp, state, params, grad, lr, ranges));
    const threshold = median(masks.scopes.map((s) => s.threshold));
    return { applied: true, skipReason: undefined, gradNorm, clipCoef, lr, kept: masks.kept, keptRatio: masks.kept / layout.size, threshold, masks };
  }

  private tensorsOf(grad: Float32Array): NamedTensor[] {
    return this.layout.slots.map((s) => ({ name: s.name, values: grad.subarray(s.offset, s.offset + s.size) }));
  }

  /** This step's masks for the per-step methods (GMT's threshold on |Γ|, random keys); undefined otherwise. */
  private stepMasks(step: number, grad: Float32Array): MaskSet | undefined {
    const { cfg, layout } = this;
    if (cfg.method === 'gmt') {
      return computeMasks(this.tensorsOf(grad), { maskRatio: cfg.maskRatio, scope: cfg.maskScope, tieRule: cfg.tieRule }, this.keepViews);
    }
    if (cfg.method === 'random')
      return computeRandomMasks(
        layout.slots.map((s) => ({ name: s.name, size: s.size })),
        { seed: cfg.seed, step, maskRatio: cfg.maskRatio, scope: cfg.maskScope },
      );
    return undefined;
  }
}
