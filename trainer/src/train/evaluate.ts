/**
 * Evaluation: held-out loss / perplexity (token-weighted mean over the eval set's loss tokens) and
 * exact-match accuracy by batched greedy generation (argmax, lowest id on ties), stopping at eos or
 * a newline as the data package's extractAnswer defines.
 */
import { type Dataset, type Tokenizer, buildBatch, chatGenerationPrompt, exactMatch, extractAnswer, generationDone, promptIds } from '../data/index.js';
import type { Gpt2Model } from '../model/gpt2.js';
import type { EvalItem } from './sources.js';

/** Held-out metrics. */
export interface EvalResult {
  readonly loss: number;
  readonly perplexity: number;
  readonly exactMatch: number;
  readonly examples: number;
  /** A few (prompt, reference, prediction) triples for the summary. */
  readonly samples: ReadonlyArray<{ readonly prompt: string; readonly reference: string; readonly prediction: string; readonly correct: boolean }>;
}

/** Token-weighted mean loss over a dataset, in batches of `batchSize`. */
export function heldOutLoss(model: Gpt2Model, params: Float32Array, data: Dataset, batchSize: number): number {
  let total = 0,
    tokens = 0;
  for (let i = 0; i < data.examples.length; i += batchSize) {
    const batch = buildBatch(data.examples.slice(i, i + batchSize), data.maxSeqLen, data.padId);
    const r = model.loss(params, batch);
    total += r.loss * r.lossTokens;
    tokens += r.lossTokens;
  }
  return tokens > 0 ? total / tokens : NaN;
}

/** Greedy completions for a list of prompt token lists (each at most maxNewTokens long). */
export function greedyGenerate(
  model: Gpt2Model,
  params: Float32Array,
  tokenizer: Tokenizer,
  prompts: readonly number[][],
  maxNewTokens: number,
  batchSize = 32,
): number[][] {
  const V = model.config.vocabSize,
    maxT = model.config.nPositions;
  const out: number[][] = prompts.map(() => []);
  for (let start = 0; start < prompts.length; start += batchSize) {
    const rows = prompts.slice(start, start + batchSize).map((p) => p.slice(Math.max(0, p.length - (maxT - 1)))); // keep room for one token
    const B = rows.length;
    const T = Math.min(maxT, Math.max(...rows.map((r) => r.length)) + maxNewTokens);
    const inputs = new Int32Array(B * T).fill(tokenizer.padId);
    const len = new Int32Array(B);
    rows.forEach((r, b) => {
      inputs.set(r, b * T);
      len[b] = r.length;
    });
    const done = new Uint8Array(B);
    for (let n = 0; n < maxNewTokens; n++) {
      const positions = new Int32Array(B);
      for (let b = 0; b < B; b++) positions[b] = len[b]! - 1;
      const logits = model.logitsAt(params, inputs, B, T, positions);
      let active = 0;
      for (let b = 0; b < B; b++) {
        if (done[b]) continue;
        let best = 0,
          bestV = -Infinity;
        for (let v = 0; v < V; v++) {
          const x = logits[b * V + v]!;
          if (x > bestV) {
            bestV = x;
            best = v;
          }
        }
        const gen = out[start + b]!;
        gen.push(best);
        if (len[b]! < T) {
          inputs[b * T + len[b]!] = best;
          len[b] = len[b]! + 1;
        }
        if (generationDone(tokenizer, gen) || len[b]! >= T) done[b] = 1;
        else active++;
      }
      if (active === 0) break;
    }
  }
  return out;
}

/** Held-out loss (when a dataset is given) and exact match over `items`. */
export function evaluate(
  model: Gpt2Model,
  params: Float32Array,
  tokenizer: Tokenizer,
  data: Dataset | undefined,
  items: readonly EvalItem[],
  maxNewTokens: number,
  batchSize = 32,
): EvalResult {
  const loss = data !== undefined ? heldOutLoss(model, params, data, batchSize) : NaN;
  const prompts = items.map((it) => (it.kind === 'prompt' ? promptIds(tokenizer, it.prompt) : chatGenerationPrompt(tokenizer, it.history)));
  const gens = greedyGenerate(model, params, tokenizer, prompts, maxNewTokens, batchSize);
  let correct = 0;
  const samples: Array<{ prompt: string; reference: string; prediction: string; correct: boolean }> = [];
  items.forEach((it, i) => {
    const prediction = extractAnswer(tokenizer, gens[i]!);
    const ok = exactMatch(prediction, it.reference);
    if (ok) correct++;
    if (samples.length < 5)
      samples.push({
        prompt: it.kind === 'prompt' ? it.prompt : it.history.map((m) => m.content).join(' | '),
        reference: it.reference.trim(),
        prediction,
        correct: ok,
      });
  });
  return { loss, perplexity: Math.exp(loss), exactMatch: items.length > 0 ? correct / items.length : NaN, examples: items.length, samples };
}
