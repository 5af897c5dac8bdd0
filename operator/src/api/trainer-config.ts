/**
 * The spec → trainer config mapping (the keys of trainer/src/config/schema.ts that a GmtFineTune
 * decides). Per-pod keys (rank, attempt, jobId, natsUrl, checkpointDir, metricsPort) come from the
 * pod's environment (ARCHITECTURE §4) and are not set here.
 */
import type { z } from 'zod';
import type { TrainerConfigSchema } from '../../../trainer/src/config/schema.js';
import type { GmtFineTuneSpec } from './spec.js';

/** A trainer config file's content: every key optional, as the trainer's config file is. */
export type TrainerConfigInput = Partial<z.input<typeof TrainerConfigSchema>>;

/** The trainer config for `spec` (pure; the children builder mounts it as GMT_CONFIG). */
export function computeTrainerConfig(spec: GmtFineTuneSpec): TrainerConfigInput {
  const { model, dataset, method, optimizer: o, training: t, checkpoint } = spec;
  return {
    worldSize: spec.workers,
    baseModel: model.source,
    modelPreset: model.preset,
    tokenizer: model.tokenizer,
    trainData: dataset.train,
    ...(dataset.eval !== undefined ? { evalData: dataset.eval } : {}),
    syntheticTrainSize: dataset.syntheticTrainSize,
    syntheticEvalSize: dataset.syntheticEvalSize,
    method: method.name,
    maskRatio: method.maskRatio,
    maskScope: method.maskScope,
    maskMode: method.maskMode,
    tieRule: method.tieRule,
    oneoffMode: method.oneoffMode,
    optimizer: o.name,
    lr: o.lr,
    beta1: o.beta1,
    beta2: o.beta2,
    eps: o.eps,
    weightDecay: o.weightDecay,
    momentum: o.momentum,
    schedule: o.schedule,
    warmupRatio: o.warmupRatio,
    minLrRatio: o.minLrRatio,
    maxGradNorm: o.maxGradNorm,
    steps: t.steps,
    microBatchSize: t.microBatchSize,
    accumSteps: t.accumSteps,
    seqLen: t.seqLen,
    seed: t.seed,
    nonFinite: t.nonFinite,
    maxSkippedSteps: t.maxSkippedSteps,
    evalEvery: t.evalEvery,
    evalExamples: t.evalExamples,
    maxNewTokens: t.maxNewTokens,
    checkpointEvery: checkpoint.interval,
    keepCheckpoints: checkpoint.keep,
  };
}

/** Spec field path → trainer config key, for every spec field that reaches the trainer. */
export const SPEC_TO_TRAINER_KEY: Readonly<Record<string, keyof z.input<typeof TrainerConfigSchema>>> = {
  workers: 'worldSize',
  'model.source': 'baseModel',
  'model.preset': 'modelPreset',
  'model.tokenizer': 'tokenizer',
  'dataset.train': 'trainData',
  'dataset.eval': 'evalData',
  'dataset.syntheticTrainSize': 'syntheticTrainSize',
  'dataset.syntheticEvalSize': 'syntheticEvalSize',
  'method.name': 'method',
  'method.maskRatio': 'maskRatio',
  'method.maskScope': 'maskScope',
  'method.maskMode': 'maskMode',
  'method.tieRule': 'tieRule',
  'method.oneoffMode': 'oneoffMode',
  'optimizer.name': 'optimizer',
  'optimizer.lr': 'lr',
  'optimizer.beta1': 'beta1',
  'optimizer.beta2': 'beta2',
  'optimizer.eps': 'eps',
  'optimizer.weightDecay': 'weightDecay',
  'optimizer.momentum': 'momentum',
  'optimizer.schedule': 'schedule',
  'optimizer.warmupRatio': 'warmupRatio',
  'optimizer.minLrRatio': 'minLrRatio',
  'optimizer.maxGradNorm': 'maxGradNorm',
  'training.steps': 'steps',
  'training.microBatchSize': 'microBatchSize',
  'training.accumSteps': 'accumSteps',
  'training.seqLen': 'seqLen',
  'training.seed': 'seed',
  'training.nonFinite': 'nonFinite',
  'training.maxSkippedSteps': 'maxSkippedSteps',
  'training.evalEvery': 'evalEvery',
  'training.evalExamples': 'evalExamples',
  'training.maxNewTokens': 'maxNewTokens',
  'checkpoint.interval': 'checkpointEvery',
  'checkpoint.keep': 'keepCheckpoints',
};
