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
import { TrainerMetrics, startMetricsServer } from '../metrics/index.js';
import { MODEL_PRESETS, type ModelConfig, trainFlopsPerToken } from '../model/config.js';
import { Gpt2Model } from '../model/gpt2.js';
import { initParams } from '../model/init.js';
import { type Collective, DenseCollective, LocalCollective, ShardedCollective } from '../collective/collective.js';
import type { Transport } from '../collective/transport.js';
import { ProgressPublisher, connectNats } from '../collective/connect.js';
import { optimizerParams, scheduleParams } from './update.js';
import { BUNDLED_BASE_MODEL } from '../paths.js';
import { createProgress } from '../progress.js';
import { Rng } from '../rng.js';
import { startTracing } from '../tracing/index.js';
import { type EvalResult, evaluate } from './evaluate.js';
import { type TrainState, runLoop } from './loop.js';
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

/** Run the fine-tune described by `c`. */
export async function runTraining(c: TrainerConfig, opts: RunOptions): Promise<RunSummary> {
  const { log } = opts;
  const backend = await initBackend(c.backend, { threads: c.threads, deterministic: c.deterministic });
  const tokenizer = createTokenizer(c.tokenizer);
  const base = await loadBase(c);
  checkCompatible(c, base.modelConfig, tokenizer);
  const model = new Gpt2Model(base.modelConfig);
  const data = await loadRunData(c, tokenizer);
  const hash = configHash(c);
  const fingerprint = datasetFingerprint(data.train);
  log.info('config', { ...c });
  log.info('backend', { backend: backend.label, provider: backend.provider, threads: backend.threads, reason: backend.reason });
  log.info('run', {
    backend: backend.label,
    provider: backend.provider,
    params: model.layout.size,
    base: base.source,
    train: data.train.examples.length,
    eval: data.evalItems.length,
    node: nodeVersion,
  });

  // ---- state: fresh from the base weights, or resumed
  const state: TrainState = {
    step: 0,
    params: base.params.slice(),
    cursor: START_CURSOR,
    skippedSteps: 0,
    tokensSeen: 0,
    samplesSeen: 0,
    lastLoss: NaN,
    lastUpdate: undefined,
  };
  // The checkpoint to resume from is read before connecting: its step bounds the steps the transport accepts.
  const latest = c.resume !== 'never' ? await findLatestCheckpoint(c.checkpointDir) : undefined;
  if (latest === undefined && c.resume === 'must') throw new CheckpointError(`resume=must but ${c.checkpointDir} holds no complete checkpoint`);
  const ck = latest === undefined ? undefined : await readCheckpoint(latest, { layout: model.layout, configHash: hash, config: { ...c } });
  if (ck !== undefined && ck.state.datasetFingerprint !== fingerprint)
    throw new CheckpointError(`${latest}: the training data differ from the data this checkpoint was trained on (fingerprint mismatch)`);
  if (ck !== undefined && ck.optimizer.kind !== c.optimizer)
    throw new CheckpointError(`${latest}: optimizer ${ck.optimizer.kind} in the checkpoint, ${c.optimizer} configured`);
  const metrics = new TrainerMetrics({
    jobId: c.jobId,
    rank: c.rank,
    backend: backend.label,
    method: c.method,
    model: `gpt2-${base.modelConfig.nLayer}l-${base.modelConfig.nEmbd}d`,
    version: '0.1.0',
  });
  const transport = c.worldSize > 1 ? await (opts.connect ?? ((cfg) => connectNats(cfg, metrics, ck?.state.step ?? 0)))(c) : undefined;
  const publisher = c.rank === 0 && c.natsUrl !== '' ? await ProgressPublisher.open(c.natsUrl, c.jobId, c.natsCreds) : undefined;
  const publish = (p: ProgressMessage): void => {
    publisher?.publish(p);
    opts.onProgress?.(p);
  };
  const collective: Collective =
    transport === undefined
      ? new LocalCollective(model.layout, c, optimizerParams(c), scheduleParams(c))
      : c.collective === 'dense'
        ? new DenseCollective(transport, model.layout, c, optimizerParams(c), scheduleParams(c))
        : new ShardedCollective(transport, model.layout, c, optimizerParams(c), scheduleParams(c));
  if (collective instanceof ShardedCollective)
    log.info('sharded optimizer', { range: `[${collective.optimizerRange.lo}, ${collective.optimizerRange.hi})`, savedBytes: collective.optimizerBytesSaved });
  let resumedFrom: string | undefined;
  if (latest !== undefined && ck !== undefined) {
    state.step = ck.state.step;
    state.params = ck.params;
    collective.loadOptimizer(ck.optimizer);
    state.cursor = ck.state.dataCursor;
    state.skippedSteps = ck.state.skippedSteps;
    state.tokensSeen = ck.state.metrics.tokensSeen;
    state.samplesSeen = ck.state.metrics.samplesSeen;
    state.lastLoss = ck.state.metrics.loss ?? NaN;
    resumedFrom = latest;
    log.info('resumed', { from: latest, step: state.step });
  }

  // ---- observability (fenced off from the step)
  const server = c.metricsPort > 0 && c.rank >= 0 ? await startMetricsServer({ port: c.metricsPort, registry: metrics.registry }) : undefined;
  if (server !== undefined) log.info('metrics', { url: server.url });
  const tracing = startTracing({ serviceName: 'gmt-trainer', attributes: { 'gmt.job_id': c.jobId, 'gmt.rank': c.rank }, env: process.env });
  const flopsPerToken = trainFlopsPerToken(base.modelConfig, c.seqLen);
  const peak = measureMatmulPeak();
  const progress = createProgress(c.rank === 0 ? c.progress : 'none');
  // Without a progress display, notes (eval results, checkpoints) go to the log.
  const note = (line: string): void => {
    if (c.rank === 0 && c.progress !== 'none') progress.note(line);
    else log.info(line.replace(/^\[gmt-train\] /, ''));
  };
  let lastCheckpoint: string | undefined;
  const stateJson = (s: TrainState): StoredState => ({
    formatVersion: 1,
    step: s.step,
    totalSteps: c.steps,
    dataCursor: s.cursor,
    rngState: new Rng(c.seed).state() as [number, number, number, number],
    configHash: hash,
    config: { ...c },
    datasetFingerprint: fingerprint,
    skippedSteps: s.skippedSteps,
    maskStats: s.lastUpdate?.applied
      ? { keptRatio: s.lastUpdate.keptRatio, threshold: Number.isFinite(s.lastUpdate.threshold) ? s.lastUpdate.threshold : 0, kept: s.lastUpdate.kept }
      : null,
    metrics: { loss: Number.isFinite(s.lastLoss) ? s.lastLoss : null, tokensSeen: s.tokensSeen, samplesSeen: s.samplesSeen },
    baseModel: base.source,
    createdAt: new Date().toISOString(),
    attempt: c.attempt,
    worldSize: c.worldSize,
  });
  const checkpoint = async (s: TrainState, params = s.params): Promise<void> => {
    const t0 = performance.now();
    const optimizer = await collective.gatherOptimizer(s.step); // a collective call: every rank takes part
    if (c.rank !== 0 || optimizer === undefined) return;
    lastCheckpoint = await writeCheckpoint(
      c.checkpointDir,
      { modelConfig: base.modelConfig, params, optimizer: { ...optimizer, kind: c.optimizer }, state: stateJson(s) },
      { keep: c.keepCheckpoints },
    );
    metrics.observeCheckpoint({ durationSeconds: (performance.now() - t0) / 1000, step: s.step });
    note(`[gmt-train] checkpoint ${lastCheckpoint}`);
  };
  const runEval = (params: Float32Array, label: string): EvalResult => {
    const t0 = performance.now();
    const r = evaluate(model, params, tokenizer, data.eval, data.evalItems, c.maxNewTokens, Math.max(8, c.microBatchSize));
    metrics.observePhase('eval', (performance.now() - t0) / 1000);
    metrics.observeEval({ loss: r.loss, exactMatch: r.exactMatch });
    note(
      `[gmt-train] eval ${label}: loss ${formatNumber(r.loss)} · ppl ${formatNumber(r.perplexity)} · exact match ${(100 * r.exactMatch).toFixed(1)}% of ${r.examples}`,
    );
    return r;
  };

  try {
    const before = opts.skipEvalBefore || resumedFrom !== undefined ? undefined : runEval(state.params, 'before');
    const t0 = performance.now();
    const startStep = state.step,
      startTokens = state.tokensSeen,
      startSamples = state.samplesSeen;
    let lastPublish = 0,
      lastSps = 0,
      lastTps = 0;
    await runLoop({
      config: c,
      model,
      train: data.train,
      state,
      collective,
      hooks: {
        onStep: (r, s) => {
          const sps = r.samples / r.stepSeconds,
            tps = r.tokens / r.stepSeconds;
          lastSps = sps;
          lastTps = tps;
          const mfu = (tps * flopsPerToken) / peak;
          metrics.observeStep({
            durationSeconds: r.stepSeconds,
            samples: r.samples,
            tokens: r.tokens,
            loss: r.loss,
            keptRatio: r.update.keptRatio,
            threshold: r.update.threshold,
            mfu,
            lr: r.update.lr,
            gradNorm: r.update.gradNorm,
            step: r.step,
            totalSteps: c.steps,
          });
          metrics.observePhase('compute', r.computeSeconds);
          metrics.observePhase('optimizer', r.updateSeconds);
          if (!r.update.applied) {
            metrics.observeSkip('non_finite_gradient');
            note(`[gmt-train] WARN step ${r.step} skipped: ${r.update.skipReason ?? ''}`);
          }
          tracing.tracer
            .startSpan('gmt.train.step', {
              attributes: { step: r.step, loss: r.loss, kept_ratio: r.update.keptRatio, lr: r.update.lr, applied: r.update.applied },
              startTime: Date.now() - r.stepSeconds * 1000,
            })
            .end();
          progress.update({
            step: r.step,
            total: c.steps,
            fields: { loss: r.loss.toFixed(4), kept: `${(100 * r.update.keptRatio).toFixed(1)}%`, 'samples/s': sps.toFixed(1) },
          });
          const nowMs = Date.now();
          if (nowMs - lastPublish >= 1000 || r.step === c.steps) {
            lastPublish = nowMs;
            publish({
              attempt: c.attempt,
              step: r.step,
              totalSteps: c.steps,
              epoch: s.cursor.epoch,
              loss: r.loss,
              samplesPerSecond: sps,
              tokensPerSecond: tps,
              keptRatio: r.update.keptRatio,
              lastCheckpoint: lastCheckpoint ?? null,
              phase: 'training',
              backend: backend.label,
            });
          }
        },
        onEval: (s) => {
          runEval(s.params, `step ${s.step}`);
        },
        checkpoint,
        ...(opts.shouldStop !== undefined ? { shouldStop: opts.shouldStop } : {}),
      },
    });
    progress.done();
    const trainSeconds = (performance.now() - t0) / 1000;
    let finalParams = state.params;
    if (c.method === 'oneoff') {
      const names = model.layout.slots;
      const view = (flat: Float32Array) => names.map((s) => ({ name: s.name, values: flat.subarray(s.offset, s.offset + s.size) }));
      const dropped = oneOffDrop(view(base.params), view(state.params), { maskRatio: c.maskRatio, method: c.oneoffMode, tieRule: c.tieRule, seed: c.seed });
      finalParams = new Float32Array(model.layout.size);
      dropped.tensors.forEach((t, i) => finalParams.set(t.values, names[i]!.offset));
      log.info('one-off drop', { mode: c.oneoffMode, keptRatio: dropped.keptRatio });
    }
    await checkpoint(state, finalParams);
    const after = runEval(finalParams, 'after');
    publish({
      attempt: c.attempt,
      step: state.step,
      totalSteps: c.steps,
      epoch: state.cursor.epoch,
      loss: Number.isFinite(state.lastLoss) ? state.lastLoss : null,
      samplesPerSecond: lastSps,
      tokensPerSecond: lastTps,
      keptRatio: state.lastUpdate?.keptRatio ?? null,
      lastCheckpoint: lastCheckpoint ?? null,
      phase: 'finished',
      backend: backend.label,
      evalLoss: after.loss,
      exactMatch: after.exactMatch,
    });
    const trained = state.step - startStep;
    return {
      backend,
      modelConfig: base.modelConfig,
      parameters: model.layout.size,
      before,
      after,
      steps: state.step,
      resumedFrom,
      lastCheckpoint,
      trainSeconds,
      samplesPerSecond: trained > 0 ? (state.samplesSeen - startSamples) / trainSeconds : 0,
      tokensPerSecond: trained > 0 ? (state.tokensSeen - startTokens) / trainSeconds : 0,
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
    await tracing.shutdown();
  }
}
