/**
 * The one spec → trainer config table: which GmtFineTune spec field (a dotted path under `spec`)
 * sets which trainer config key. The operator builds each job's config file from it
 * (operator/src/api/trainer-config.ts); per-pod keys (rank, attempt, jobId, natsUrl, checkpointDir,
 * metricsPort) come from the pod's environment (env.ts) and are not in it.
 */
import type { ConfigKey } from './config.js';

/** Spec field path → trainer config key, for every spec field that reaches the trainer (in config-file order). */
export const SPEC_TO_TRAINER_KEY = {
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
} as const satisfies Readonly<Record<string, ConfigKey>>;
