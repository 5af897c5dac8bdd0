/**
 * The training loop: per optimizer step, draw this rank's micro-batches of the global batch,
 * accumulate Γ, apply the method's update (update/updater.ts), then — fenced off from the step — metrics,
 * progress, evaluation and checkpoints. Everything a resumed run needs is in TrainState, so a run
 * resumed from a checkpoint reproduces the uninterrupted one bit for bit.
 */
import { type DataCursor, type Dataset, nextGlobalBatch } from '../data/index.js';
import { NumericError, InterruptedError } from '../errors.js';
import type { Gpt2Model } from '../model/gpt2.js';
import type { TrainerConfig } from '../../../contract/config.js';
import type { Collective } from '../collective/collective.js';
import type { UpdateResult } from '../update/method.js';

/** Everything that evolves during training (and is checkpointed). */
export interface TrainState {
  /** Optimizer steps completed. */
  step: number;
  params: Float32Array;
  cursor: DataCursor;
  skippedSteps: number;
  tokensSeen: number;
  samplesSeen: number;
  lastLoss: number;
  lastUpdate: UpdateResult | undefined;
}

/** Measurements of one optimizer step, handed to observers. */
export interface StepReport {
  readonly step: number;
  readonly loss: number;
  readonly update: UpdateResult;
  readonly samples: number;
  readonly tokens: number;
  readonly computeSeconds: number;
  readonly updateSeconds: number;
  readonly stepSeconds: number;
}

/** Side effects outside the step: observers, evaluation and checkpoints (all optional). */
export interface LoopHooks {
  onStep?(r: StepReport, s: TrainState): void;
  /** Called after steps where (step % evalEvery == 0). */
  onEval?(s: TrainState): void;
  /** Persist the state; called every checkpointEvery steps and at the end. */
  checkpoint?(s: TrainState): Promise<void>;
  /** Checked between steps; when it returns true the loop checkpoints and throws InterruptedError. */
  shouldStop?(): boolean;
}

/** Options of runLoop besides the config. */
export interface LoopInputs {
  readonly config: TrainerConfig;
  readonly model: Gpt2Model;
  readonly train: Dataset;
  readonly state: TrainState;
  /** Reduces Γ across ranks and applies the update (LocalCollective for one process). */
  readonly collective: Collective;
  readonly hooks: LoopHooks;
  readonly now?: () => number;
}

/** Run from state.step to config.steps. Returns the final state (the same object, mutated). */
export async function runLoop({ config: c, model, train, state, collective, hooks, now = () => performance.now() }: LoopInputs): Promise<TrainState> {
  const layout = model.layout;
  const grad = new Float32Array(layout.size);
  const micro = new Float32Array(layout.size);
  const batchLayout = { rank: c.rank, worldSize: c.worldSize, microBatch: c.microBatchSize, accumSteps: c.accumSteps };
  const M = c.accumSteps * c.worldSize;
  while (state.step < c.steps) {
    // A collective decision: ranks see a signal at different times, but must stop at the same step.
    if (await collective.agreeToStop(state.step, hooks.shouldStop?.() ?? false)) {
      await hooks.checkpoint?.(state);
      throw new InterruptedError(`stopped by signal after step ${state.step}; checkpoint written`);
    }
    // ---------------------------------------------------------------- the step
    const t0 = now();
    const drawn = nextGlobalBatch(train, c.seed, state.cursor, batchLayout);
    const mine = drawn.microBatches;
    grad.fill(0);
    let lossSum = 0;
    for (const mb of mine) {
      const r = model.lossAndGrads(state.params, mb, micro);
      for (let i = 0; i < grad.length; i++) grad[i] = grad[i]! + micro[i]!; // fp32 sum in micro-batch order
      lossSum += r.loss;
    }
    // Throughput counts the whole global batch (every rank draws the same layout).
    const samples = c.microBatchSize * c.accumSteps * c.worldSize;
    const tokens = drawn.globalTokens;
    const t1 = now();
    // Γ = (1/M) Σ_m ∇L(Θ, B_m) over all M micro-batches of the step, on every rank (docs/architecture.md §2-3).
    const update = await collective.step({ step: state.step, params: state.params, localSum: grad, microBatches: M });
    const t2 = now();
    // ---------------------------------------------------------------- end of the step
    state.step += 1;
    state.cursor = drawn.cursor;
    state.samplesSeen += samples;
    state.tokensSeen += tokens;
    state.lastLoss = lossSum / mine.length;
    state.lastUpdate = update;
    if (!update.applied) {
      state.skippedSteps += 1;
      if (state.skippedSteps > c.maxSkippedSteps)
        throw new NumericError(
          `${state.skippedSteps} steps skipped for non-finite gradients (maxSkippedSteps ${c.maxSkippedSteps}); last: ${update.skipReason ?? ''}`,
        );
    }
    if (c.hashEvery > 0 && state.step % c.hashEvery === 0) await collective.checkConsistency(state.step, state.params);
    hooks.onStep?.(
      {
        step: state.step,
        loss: state.lastLoss,
        update,
        samples,
        tokens,
        computeSeconds: (t1 - t0) / 1000,
        updateSeconds: (t2 - t1) / 1000,
        stepSeconds: (t2 - t0) / 1000,
      },
      state,
    );
    if (c.evalEvery > 0 && state.step % c.evalEvery === 0 && state.step < c.steps) hooks.onEval?.(state);
    if (c.checkpointEvery > 0 && state.step % c.checkpointEvery === 0 && state.step < c.steps) await hooks.checkpoint?.(state);
  }
  return state;
}
