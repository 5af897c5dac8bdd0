/**
 * Using a trained model: load any checkpoint (a run folder's latest, a step folder, a
 * model.safetensors, or the bundled base model) with the configuration it was trained with, sample
 * continuations token by token, and evaluate it exactly as a training run does.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CHECKPOINT_FILES, TrainerStateSchema, findLatestCheckpoint, loadModelWeights } from './checkpoint/index.js';
import type { TrainerConfig } from '../../contract/config.js';
import type { Tokenizer } from './data/index.js';
import { CheckpointError } from './errors.js';
import type { ModelConfig } from './model/config.js';
import { Gpt2Model } from './model/gpt2.js';
import { BUNDLED_BASE_MODEL } from './paths.js';
import { Rng } from './rng.js';
import { type EvalResult, evaluate } from './train/evaluate.js';
import type { RunData } from './train/sources.js';

/** A model ready for inference. */
export interface LoadedModel {
  /** The file or folder the weights came from. */
  readonly path: string;
  readonly modelConfig: ModelConfig;
  readonly params: Float32Array;
  /** The configuration the checkpoint was trained with (our checkpoints only). */
  readonly trainedConfig: Readonly<Record<string, unknown>> | undefined;
}

/**
 * Load `checkpoint`: "bundled", a run folder (its latest complete step-NNNNNNNN/), a step folder,
 * a folder with model.safetensors, or a .safetensors file.
 */
export async function loadForInference(checkpoint: string): Promise<LoadedModel> {
  const path = checkpoint === 'bundled' ? BUNDLED_BASE_MODEL : ((await findLatestCheckpoint(checkpoint)) ?? checkpoint);
  const w = await loadModelWeights(path);
  let trainedConfig: Record<string, unknown> | undefined;
  let text: string | undefined;
  try {
    text = await readFile(join(path, CHECKPOINT_FILES.state), 'utf-8');
  } catch {
    text = undefined; // not one of our checkpoints (a bare model): no stored configuration
  }
  if (text !== undefined) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new CheckpointError(`${join(path, CHECKPOINT_FILES.state)}: invalid JSON (${(e as Error).message})`, { cause: e });
    }
    const r = TrainerStateSchema.safeParse(json);
    if (!r.success)
      throw new CheckpointError(`${join(path, CHECKPOINT_FILES.state)}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    trainedConfig = r.data.config;
  }
  return { path, modelConfig: w.config, params: w.params, trainedConfig };
}

/** How to pick each next token. */
export interface SamplingOptions {
  /** 0: greedy (argmax, lowest id on ties, as evaluation does); > 0: sample from softmax(logits / temperature). */
  readonly temperature: number;
  /** Sample among the k most likely tokens only (0: all). */
  readonly topK: number;
}

/** Pick the next token id from one row of logits. */
export function pickToken(logits: Float32Array, o: SamplingOptions, rng: Rng): number {
  const V = logits.length;
  if (o.temperature === 0) {
    let best = 0,
      bestV = -Infinity;
    for (let v = 0; v < V; v++)
      if (logits[v]! > bestV) {
        bestV = logits[v]!;
        best = v;
      }
    return best;
  }
  let ids = Array.from({ length: V }, (_, v) => v);
  if (o.topK > 0 && o.topK < V) ids = ids.sort((a, b) => logits[b]! - logits[a]! || a - b).slice(0, o.topK);
  let max = -Infinity;
  for (const v of ids) max = Math.max(max, logits[v]!);
  const weights = ids.map((v) => Math.exp((logits[v]! - max) / o.temperature));
  const sum = weights.reduce((a, b) => a + b, 0);
  let u = rng.nextFloat() * sum;
  for (let i = 0; i < ids.length; i++) {
    u -= weights[i]!;
    if (u < 0) return ids[i]!;
  }
  return ids[ids.length - 1]!;
}

/** Options of generate(). */
export interface GenerateOptions extends SamplingOptions {
  readonly maxNewTokens: number;
  /** Stop at the end-of-sequence token only, or also at the first newline (the tasks' answers are one line). */
  readonly stop: 'eos' | 'newline';
}

/**
 * Continue `prompt` (token ids) one token at a time; `onText` receives each newly complete piece of
 * text as it is produced (a multi-byte character is held back until its last byte). Returns the ids.
 */
export function generate(
  model: Gpt2Model,
  params: Float32Array,
  tokenizer: Tokenizer,
  prompt: readonly number[],
  o: GenerateOptions,
  rng: Rng,
  onText: (text: string) => void,
): number[] {
  const maxT = model.config.nPositions;
  const ids = prompt.slice(Math.max(0, prompt.length - (maxT - 1)));
  const out: number[] = [];
  let printed = '';
  for (let n = 0; n < o.maxNewTokens; n++) {
    const window = ids.slice(Math.max(0, ids.length - maxT));
    const T = window.length;
    const logits = model.logitsAt(params, Int32Array.from(window), 1, T, Int32Array.of(T - 1));
    const next = pickToken(logits, o, rng);
    if (next === tokenizer.eosId) break;
    ids.push(next);
    out.push(next);
    const text = tokenizer.decode(out);
    const stable = text.endsWith('\uFFFD') ? text.slice(0, -1) : text;
    if (stable.length > printed.length && stable.startsWith(printed)) {
      onText(stable.slice(printed.length));
      printed = stable;
    }
    if (o.stop === 'newline' && text.includes('\n')) break;
  }
  const final = tokenizer.decode(out);
  if (final.length > printed.length && final.startsWith(printed)) onText(final.slice(printed.length));
  return out;
}

/**
 * Evaluate `params` on a run's held-out data with the run's own settings: the same function, data,
 * batch size and generation budget as the "eval before/after" of training, so the numbers match.
 */
export function evaluateLikeTraining(model: Gpt2Model, params: Float32Array, tokenizer: Tokenizer, data: RunData, c: TrainerConfig): EvalResult {
  return evaluate(model, params, tokenizer, data.eval, data.evalItems, c.maxNewTokens, evalBatchSize(c));
}

/** The evaluation batch size a run with config `c` uses. */
export function evalBatchSize(c: TrainerConfig): number {
  return Math.max(8, c.microBatchSize);
}
