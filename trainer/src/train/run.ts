/**
 * A whole fine-tuning run from a resolved config: backend, tokenizer, base weights, data, resume,
 * observability, evaluation before and after, the loop, One-off Drop, the final checkpoint and a
 * before/after summary. main.ts maps its errors to exit codes.
 */
import { version as nodeVersion } from 'node:process';
import * as tf from '@tensorflow/tfjs-core';
import { type BackendInfo, initBackend } from '../backend.js';
import { findLatestCheckpoint, loadModelWeights, readCheckpoint, writeCheckpoint } from '../checkpoint/index.js';
import type { TrainerState as StoredState } from '../checkpoint/trainer-state.js';
import { configHash } from '../config/load.js';
import type { TrainerConfig } from '../../../contract/config.js';
import type { ProgressMessage } from '../../../contract/progress.js';
import { START_CURSOR, type Tokenizer, createTokenizer, datasetFingerprint } from '../data/index.js';
import { CheckpointError, ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import { formatNumber } from '../log.js';
import { oneOffDrop } from '../masking/index.js';
import { type Phase, TrainerMetrics, startMetricsServer } from '../metrics/index.js';
import { MODEL_PRESETS, type ModelConfig, trainFlopsPerToken } from '../model/config.js';
import { Gpt2Model } from '../model/gpt2.js';
import { initParams } from '../model/init.js';
import { type Collective, DenseCollective, LocalCollective, type PhaseTimer, ShardedCollective, type TimedPhase } from '../collective/collective.js';
import type { Transport } from '../collective/transport.js';
import { ProgressPublisher, connectNats } from '../collective/connect.js';
import { optimizerParams, scheduleParams } from '../update/method.js';
import { BUNDLED_BASE_MODEL } from '../paths.js';
import { createProgress } from '../progress.js';
import { Rng } from '../rng.js';
import { startTracing } from '../tracing/index.js';
import type { EvalResult } from './evaluate.js';
import { evaluateLikeTraining } from './inference.js';
import { type StepReport, type TrainState, runLoop } from './loop.js';
import { loadRunData } from './sources.js';

/** The outcome of a run, for the CLI summary and tests. */
export interface RunSummary {
  readonly backend: BackendInfo;
  readonly modelConfig: ModelConfig;
  readonly parameters: number;
  readonly before: EvalResult | undefined;
  readonly after: EvalResult;
  readonly steps: number;
  readonly resumedFrom: string | undefined;
  readonly lastCheckpoint: string | undefined;
  readonly trainSeconds: number;
  readonly samplesPerSecond: number;
  readonly tokensPerSecond: number;
  readonly finalLoss: number;
  readonly keptRatio: number;
  readonly skippedSteps: number;
  readonly params: Float32Array;
}

/** Options of runTraining beyond the config. */
export interface RunOptions {
  readonly log: Logger;
  /** Skip the evaluation before training (resume, benchmarks). */
  readonly skipEvalBefore?: boolean;
  /** Checked between steps (SIGTERM/SIGINT). */
  readonly shouldStop?: () => boolean;
  /** Called with each progress message (rank 0 publishes it on NATS for the operator and launcher). */
  readonly onProgress?: (p: ProgressMessage) => void;
  /** Connects this rank's transport when worldSize > 1 (rendezvous included). */
  readonly connect?: (c: TrainerConfig) => Promise<Transport>;
}

/** Resolve the base weights: bundled, a path, or a fresh init ("none"). */
export async function loadBase(c: TrainerConfig): Promise<{ modelConfig: ModelConfig; params: Float32Array; source: string }> {
  if (c.baseModel === 'none') {
    const modelConfig = MODEL_PRESETS[c.modelPreset];
    return { modelConfig, params: initParams(new Gpt2Model(modelConfig).layout, c.seed), source: `init:${c.modelPreset}` };
  }
  const path = c.baseModel === 'bundled' ? BUNDLED_BASE_MODEL : c.baseModel;
  const w = await loadModelWeights(path);
  return { modelConfig: w.config, params: w.params, source: c.baseModel === 'bundled' ? 'bundled:base-tiny' : path };
}

function checkCompatible(c: TrainerConfig, mc: ModelConfig, tok: Tokenizer): void {
  if (tok.vocabSize > mc.vocabSize)
    throw new ConfigError(`tokenizer "${c.tokenizer}" has ${tok.vocabSize} tokens but the model's vocabSize is ${mc.vocabSize}`);
  if (c.seqLen > mc.nPositions) throw new ConfigError(`seqLen ${c.seqLen} exceeds the model's nPositions ${mc.nPositions}`);
}

/** Measure this backend's matmul throughput (FLOP/s) for MFU, on a square fp32 matmul. */
export function measureMatmulPeak(n = 512, reps = 4): number {
  const a = tf.randomNormal([n, n]),
    b = tf.randomNormal([n, n]);
  try {
    tf.tidy(() => tf.matMul(a, b)).dispose();
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) {
      const c = tf.matMul(a, b);
      c.dataSync();
      c.dispose();
    }
    return (2 * n ** 3 * reps) / ((performance.now() - t0) / 1000);
  } finally {
    a.dispose();
    b.dispose();
  }
}

/** What the run is built from: backend, tokenizer, base weights, model and data. */
interface RunInputs {
  readonly backend: BackendInfo;
  readonly tokenizer: Tokenizer;
  readonly base: Awaited<ReturnType<typeof loadBase>>;
  readonly model: Gpt2Model;
  readonly data: Awaited<ReturnType<typeof loadRunData>>;
  /** Config hash and data fingerprint: a checkpoint resumes only with both unchanged. */
  readonly hash: string;
  readonly fingerprint: string;
}

async function loadInputs(c: TrainerConfig, log: Logger): Promise<RunInputs> {
  const backend = await initBackend(c.backend, { threads: c.threads, deterministic: c.deterministic, fusedKernels: c.fusedKernels });
  const tokenizer = createTokenizer(c.tokenizer);
  const base = await loadBase(c);
  checkCompatible(c, base.modelConfig, tokenizer);
  const model = new Gpt2Model(base.modelConfig);
  const data = await loadRunData(c, tokenizer);
  const inputs = { backend, tokenizer, base, model, data, hash: configHash(c), fingerprint: datasetFingerprint(data.train) };
  log.info('config', { ...c });
  log.info('backend', {
    backend: backend.label,
    provider: backend.provider,
    threads: backend.threads,
    reason: backend.reason,
    fusedKernels: backend.fusedKernels,
    kernels: backend.fusedKernelsReason,
  });
  log.info('run', {
    backend: backend.label,
    provider: backend.provider,
    params: model.layout.size,
    base: base.source,
    train: data.train.examples.length,
    eval: data.evalItems.length,
    node: nodeVersion,
  });
  return inputs;
}

/**
 * The checkpoint to resume from (resume "auto"/"must"), checked against the config and data. Read
 * before connecting: its step bounds the steps the transport accepts.
 */
async function findResume(c: TrainerConfig, run: RunInputs): Promise<{ path: string; ck: Awaited<ReturnType<typeof readCheckpoint>> } | undefined> {
  const latest = c.resume !== 'never' ? await findLatestCheckpoint(c.checkpointDir) : undefined;
  if (latest === undefined && c.resume === 'must') throw new CheckpointError(`resume=must but ${c.checkpointDir} holds no complete checkpoint`);
  if (latest === undefined) return undefined;
  const ck = await readCheckpoint(latest, { layout: run.model.layout, configHash: run.hash, config: { ...c } });
  if (ck.state.datasetFingerprint !== run.fingerprint)
    throw new CheckpointError(`${latest}: the training data differ from the data this checkpoint was trained on (fingerprint mismatch)`);
  if (ck.optimizer.kind !== c.optimizer) throw new CheckpointError(`${latest}: optimizer ${ck.optimizer.kind} in the checkpoint, ${c.optimizer} configured`);
  return { path: latest, ck };
}

/** One process (LocalCollective), or the configured protocol over this rank's transport. */
/** The collectives' timed phases as phase-metric labels (the dense collective's one exchange is its reduction). */
const COLLECTIVE_PHASE: Record<TimedPhase, Phase> = {
  reduce_scatter: 'reduce_scatter',
  norm_threshold: 'threshold',
  optimizer: 'optimizer',
  all_gather: 'all_gather',
  all_reduce: 'reduce_scatter',
};

/**
 * Wall seconds per step phase of this rank: each observation goes to the phase metric and to a
 * running total for the end-of-run "phase seconds" log line (where a data-parallel step's time
 * goes; a rank waiting for a slower peer waits inside reduce_scatter).
 */
function phaseLedger(metrics: TrainerMetrics): { note: (phase: Phase, seconds: number) => void; timer: PhaseTimer; totals: Map<Phase, number> } {
  const totals = new Map<Phase, number>();
  const note = (phase: Phase, seconds: number): void => {
    metrics.observePhase(phase, seconds);
    totals.set(phase, (totals.get(phase) ?? 0) + seconds);
  };
  return { note, timer: (phase, seconds) => note(COLLECTIVE_PHASE[phase], seconds), totals };
}

function createCollective(c: TrainerConfig, run: RunInputs, transport: Transport | undefined, log: Logger, timer: PhaseTimer): Collective {
  const layout = run.model.layout;
  const collective: Collective =
    transport === undefined
      ? new LocalCollective(layout, c, optimizerParams(c), scheduleParams(c))
      : c.collective === 'dense'
        ? new DenseCollective(transport, layout, c, optimizerParams(c), scheduleParams(c), timer)
        : new ShardedCollective(transport, layout, c, optimizerParams(c), scheduleParams(c), timer);
  if (collective instanceof ShardedCollective)
    log.info('sharded optimizer', { range: `[${collective.optimizerRange.lo}, ${collective.optimizerRange.hi})`, savedBytes: collective.optimizerBytesSaved });
  return collective;
}

/** The loop state: fresh from the base weights, or the resumed checkpoint's (its optimizer goes to the collective). */
function initialState(run: RunInputs, resume: Awaited<ReturnType<typeof findResume>>, collective: Collective, log: Logger): TrainState {
  if (resume === undefined)
    return {
      step: 0,
      params: run.base.params.slice(),
      cursor: START_CURSOR,
      skippedSteps: 0,
      tokensSeen: 0,
      samplesSeen: 0,
      lastLoss: NaN,
      lastUpdate: undefined,
    };
  const { ck } = resume;
  collective.loadOptimizer(ck.optimizer);
  log.info('resumed', { from: resume.path, step: ck.state.step });
  return {
    step: ck.state.step,
    params: ck.params,
    cursor: ck.state.dataCursor,
    skippedSteps: ck.state.skippedSteps,
    tokensSeen: ck.state.metrics.tokensSeen,
    samplesSeen: ck.state.metrics.samplesSeen,
    lastLoss: ck.state.metrics.loss ?? NaN,
    lastUpdate: undefined,
  };
}

/** The trainer state stored in a checkpoint. */
function storedState(c: TrainerConfig, run: RunInputs, s: TrainState): StoredState {
  return {
    formatVersion: 1,
    step: s.step,
    totalSteps: c.steps,
    dataCursor: s.cursor,
    rngState: new Rng(c.seed).state() as [number, number, number, number],
    configHash: run.hash,
    config: { ...c },
    datasetFingerprint: run.fingerprint,
    skippedSteps: s.skippedSteps,
    maskStats: s.lastUpdate?.applied
      ? { keptRatio: s.lastUpdate.keptRatio, threshold: Number.isFinite(s.lastUpdate.threshold) ? s.lastUpdate.threshold : 0, kept: s.lastUpdate.kept }
      : null,
    metrics: { loss: Number.isFinite(s.lastLoss) ? s.lastLoss : null, tokensSeen: s.tokensSeen, samplesSeen: s.samplesSeen },
    baseModel: run.base.source,
    createdAt: new Date().toISOString(),
    attempt: c.attempt,
    worldSize: c.worldSize,
  };
}

/** Observability of a run, fenced off from the step: metrics, tracing, progress display, progress messages. */
interface Observers {
  readonly metrics: TrainerMetrics;
  readonly tracing: ReturnType<typeof startTracing>;
  readonly progress: ReturnType<typeof createProgress>;
  /** A note line: on the progress display, or the log without one. */
  note(line: string): void;
  /** A progress message: on NATS (rank 0) and to opts.onProgress. */
  publish(p: ProgressMessage): void;
  /** The evaluations so far (before, the last periodic one, after): every progress message carries them. */
  readonly evaluation: NonNullable<ProgressMessage['evaluation']>;
  readonly log: Logger;
}

/** The loop's onStep hook: metrics, a trace span, the progress display and (at most once a second) a progress message. */
function stepReporter(
  c: TrainerConfig,
  run: RunInputs,
  obs: Observers,
  lastCheckpoint: () => string | undefined,
  notePhase: (phase: Phase, seconds: number) => void,
): ((r: StepReport, s: TrainState) => void) & { readonly rates: { sps: number; tps: number } } {
  const flopsPerToken = trainFlopsPerToken(run.base.modelConfig, c.seqLen);
  const peak = measureMatmulPeak();
  const rates = { sps: 0, tps: 0 };
  let lastPublish = 0;
  const onStep = (r: StepReport, s: TrainState): void => {
    const sps = r.samples / r.stepSeconds,
      tps = r.tokens / r.stepSeconds;
    rates.sps = sps;
    rates.tps = tps;
    obs.metrics.observeStep({
      durationSeconds: r.stepSeconds,
      samples: r.samples,
      tokens: r.tokens,
      loss: r.loss,
      keptRatio: r.update.keptRatio,
      threshold: r.update.threshold,
      mfu: (tps * flopsPerToken) / peak,
      lr: r.update.lr,
      gradNorm: r.update.gradNorm,
      step: r.step,
      totalSteps: c.steps,
    });
    notePhase('compute', r.computeSeconds);
    // With ranks, the collective reports its own phases (optimizer included) through the ledger's timer.
    if (c.worldSize <= 1) notePhase('optimizer', r.updateSeconds);
    if (!r.update.applied) {
      obs.metrics.observeSkip('non_finite_gradient');
      obs.note(`[gmt-train] WARN step ${r.step} skipped: ${r.update.skipReason ?? ''}`);
    }
    obs.tracing.tracer
      .startSpan('gmt.train.step', {
        attributes: { step: r.step, loss: r.loss, kept_ratio: r.update.keptRatio, lr: r.update.lr, applied: r.update.applied },
        startTime: Date.now() - r.stepSeconds * 1000,
      })
      .end();
    obs.progress.update({
      step: r.step,
      total: c.steps,
      fields: { loss: r.loss.toFixed(4), kept: `${(100 * r.update.keptRatio).toFixed(1)}%`, 'samples/s': sps.toFixed(1) },
    });
    const nowMs = Date.now();
    if (nowMs - lastPublish >= 1000 || r.step === c.steps) {
      lastPublish = nowMs;
      obs.publish({
        attempt: c.attempt,
        step: r.step,
        totalSteps: c.steps,
        epoch: s.cursor.epoch,
        loss: r.loss,
        samplesPerSecond: sps,
        tokensPerSecond: tps,
        keptRatio: r.update.keptRatio,
        lastCheckpoint: lastCheckpoint() ?? null,
        phase: 'training',
        backend: run.backend.label,
        evaluation: obs.evaluation,
      });
    }
  };
  return Object.assign(onStep, { rates });
}

/** One-off Drop (method "oneoff"): drop part of the fine-tuned delta once, after training; otherwise the trained parameters. */
function finalParameters(c: TrainerConfig, run: RunInputs, params: Float32Array, log: Logger): Float32Array {
  if (c.method !== 'oneoff') return params;
  const slots = run.model.layout.slots;
  const view = (flat: Float32Array) => slots.map((s) => ({ name: s.name, values: flat.subarray(s.offset, s.offset + s.size) }));
  const dropped = oneOffDrop(view(run.base.params), view(params), { maskRatio: c.maskRatio, method: c.oneoffMode, tieRule: c.tieRule, seed: c.seed });
  const out = new Float32Array(run.model.layout.size);
  dropped.tensors.forEach((t, i) => out.set(t.values, slots[i]!.offset));
  log.info('one-off drop', { mode: c.oneoffMode, keptRatio: dropped.keptRatio });
  return out;
}

/**
 * Checkpoints of the run: `save` gathers the optimizer state (a collective call: every rank takes
 * part) and rank 0 writes the checkpoint; `last` is the newest one written.
 */
function checkpointer(
  c: TrainerConfig,
  run: RunInputs,
  collective: Collective,
  obs: Observers,
): { save: (s: TrainState, params?: Float32Array) => Promise<void>; readonly last: string | undefined } {
  const out = {
    last: undefined as string | undefined,
    save: async (s: TrainState, params = s.params): Promise<void> => {
      const t0 = performance.now();
      const optimizer = await collective.gatherOptimizer(s.step);
      if (c.rank !== 0 || optimizer === undefined) return;
      out.last = await writeCheckpoint(
        c.checkpointDir,
        { modelConfig: run.base.modelConfig, params, optimizer: { ...optimizer, kind: c.optimizer }, state: storedState(c, run, s) },
        { keep: c.keepCheckpoints },
      );
      obs.metrics.observeCheckpoint({ durationSeconds: (performance.now() - t0) / 1000, step: s.step });
      obs.note(`[gmt-train] checkpoint ${out.last}`);
    },
  };
  return out;
}

/** Held-out evaluation of `params` (exactly as `gmt-train eval` computes it), observed, noted and kept for the progress messages. */
function evaluateAndReport(
  c: TrainerConfig,
  run: RunInputs,
  obs: Observers,
  params: Float32Array,
  label: string,
  kind: 'before' | 'last' | 'after',
  step: number,
): EvalResult {
  const t0 = performance.now();
  const r = evaluateLikeTraining(run.model, params, run.tokenizer, run.data, c);
  obs.metrics.observePhase('eval', (performance.now() - t0) / 1000);
  obs.metrics.observeEval({ loss: r.loss, exactMatch: r.exactMatch });
  obs.evaluation[kind] = {
    loss: Number.isFinite(r.loss) ? r.loss : null,
    exactMatch: Number.isFinite(r.exactMatch) ? r.exactMatch : null,
    examples: r.examples,
    step,
  };
  // One readable line; JSON logs carry the full-precision numbers (`gmt-train eval --json` reproduces them).
  const display = c.rank === 0 && c.progress !== 'none';
  if (!display && c.logFormat === 'json')
    obs.log.info(`eval ${label}`, { loss: r.loss, perplexity: r.perplexity, exactMatch: r.exactMatch, examples: r.examples });
  else
    obs.note(
      `[gmt-train] eval ${label}: loss ${formatNumber(r.loss)} · ppl ${formatNumber(r.perplexity)} · exact match ${(100 * r.exactMatch).toFixed(1)}% of ${r.examples}`,
    );
  return r;
}

/** The last progress message of a run: the final state, the last step rates and the evaluation after training. */
function finishedMessage(
  c: TrainerConfig,
  backend: BackendInfo,
  state: TrainState,
  rates: { readonly sps: number; readonly tps: number },
  lastCheckpoint: string | undefined,
  after: EvalResult,
  evaluation: NonNullable<ProgressMessage['evaluation']>,
): ProgressMessage {
  return {
    attempt: c.attempt,
    step: state.step,
    totalSteps: c.steps,
    epoch: state.cursor.epoch,
    loss: Number.isFinite(state.lastLoss) ? state.lastLoss : null,
    samplesPerSecond: rates.sps,
    tokensPerSecond: rates.tps,
    keptRatio: state.lastUpdate?.keptRatio ?? null,
    lastCheckpoint: lastCheckpoint ?? null,
    phase: 'finished',
    backend: backend.label,
    evalLoss: after.loss,
    exactMatch: after.exactMatch,
    evaluation,
  };
}

/** Run the fine-tune described by `c`. */
export async function runTraining(c: TrainerConfig, opts: RunOptions): Promise<RunSummary> {
  const { log } = opts;
  const run = await loadInputs(c, log);
  const { backend, base, model } = run;
  const resume = await findResume(c, run);
  const metrics = new TrainerMetrics({
    jobId: c.jobId,
    rank: c.rank,
    backend: backend.label,
    method: c.method,
    model: `gpt2-${base.modelConfig.nLayer}l-${base.modelConfig.nEmbd}d`,
    version: '0.1.0',
  });
  const transport = c.worldSize > 1 ? await (opts.connect ?? ((cfg) => connectNats(cfg, metrics, resume?.ck.state.step ?? 0)))(c) : undefined;
  const publisher = c.rank === 0 && c.natsUrl !== '' ? await ProgressPublisher.open(c.natsUrl, c.jobId, c.natsCreds, c.attempt) : undefined;
  const phases = phaseLedger(metrics);
  const collective = createCollective(c, run, transport, log, phases.timer);
  const state = initialState(run, resume, collective, log);

  // ---- observability (fenced off from the step)
  const server = c.metricsPort > 0 && c.rank >= 0 ? await startMetricsServer({ port: c.metricsPort, registry: metrics.registry }) : undefined;
  if (server !== undefined) log.info('metrics', { url: server.url });
  const progress = createProgress(c.rank === 0 ? c.progress : 'none');
  const obs: Observers = {
    metrics,
    tracing: startTracing({ serviceName: 'gmt-trainer', attributes: { 'gmt.job_id': c.jobId, 'gmt.rank': c.rank }, env: process.env }),
    progress,
    // Without a progress display, notes (eval results, checkpoints) go to the log.
    note: (line) => {
      if (c.rank === 0 && c.progress !== 'none') progress.note(line);
      else log.info(line.replace(/^\[gmt-train\] /, ''));
    },
    publish: (p) => {
      publisher?.publish(p);
      opts.onProgress?.(p);
    },
    evaluation: {},
    log,
  };
  const ckpt = checkpointer(c, run, collective, obs);
  const checkpoint = ckpt.save;
  const runEval = (params: Float32Array, label: string, kind: 'before' | 'last' | 'after', step: number): EvalResult =>
    evaluateAndReport(c, run, obs, params, label, kind, step);

  const onStep = stepReporter(c, run, obs, () => ckpt.last, phases.note);
  try {
    const before = opts.skipEvalBefore || resume !== undefined ? undefined : runEval(state.params, 'before', 'before', state.step);
    const t0 = performance.now();
    const start = { step: state.step, tokens: state.tokensSeen, samples: state.samplesSeen };
    await runLoop({
      config: c,
      model,
      train: run.data.train,
      state,
      collective,
      hooks: {
        onStep,
        onEval: (s) => {
          runEval(s.params, `step ${s.step}`, 'last', s.step);
        },
        checkpoint,
        ...(opts.shouldStop !== undefined ? { shouldStop: opts.shouldStop } : {}),
      },
    });
    progress.done();
    const trainSeconds = (performance.now() - t0) / 1000;
    log.info('phase seconds', { rank: c.rank, train: round3(trainSeconds), ...Object.fromEntries([...phases.totals].map(([k, v]) => [k, round3(v)])) });
    const finalParams = finalParameters(c, run, state.params, log);
    await checkpoint(state, finalParams);
    const after = runEval(finalParams, 'after', 'after', state.step);
    obs.publish(finishedMessage(c, backend, state, onStep.rates, ckpt.last, after, obs.evaluation));
    const trained = state.step - start.step;
    return {
      backend,
      modelConfig: base.modelConfig,
      parameters: model.layout.size,
      before,
      after,
      steps: state.step,
      resumedFrom: resume?.path,
      lastCheckpoint: ckpt.last,
      trainSeconds,
      samplesPerSecond: trained > 0 ? (state.samplesSeen - start.samples) / trainSeconds : 0,
      tokensPerSecond: trained > 0 ? (state.tokensSeen - start.tokens) / trainSeconds : 0,
      finalLoss: state.lastLoss,
      keptRatio: state.lastUpdate?.keptRatio ?? NaN,
      skippedSteps: state.skippedSteps,
      params: finalParams,
    };
  } catch (e) {
    transport?.abort(e instanceof Error ? e.message : String(e));
    throw e;
  } finally {
    progress.done();
    await transport?.close();
    await publisher?.close();
    await server?.close();
    await obs.tracing.shutdown();
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
