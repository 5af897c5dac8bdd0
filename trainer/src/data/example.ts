/**
 * A tokenized training example and the loss-mask shift convention.
 *
 * Convention: `ids[t]` is the token at position t and `lossMask[t] = 1` means "token t is a target":
 * the model's output at position t−1 (which has seen ids[0..t−1]) is scored against ids[t]. Hence
 * lossMask[0] is always 0 (nothing predicts the first token), and a batch's
 * `targets[t] = lossMask[t+1] ? ids[t+1] : −1` (see batch.ts). Every example starts with the eos id
 * as a BOS token, so even the first completion token has a context to be predicted from.
 */

/** One tokenized example; `ids` and `lossMask` have equal length ≤ the dataset's maxSeqLen. */
export interface Example {
  readonly ids: Int32Array;
  readonly lossMask: Uint8Array;
}

/** A run of tokens that either all carry loss (completion, assistant content + eos) or none do. */
export interface Segment {
  readonly ids: readonly number[];
  readonly loss: boolean;
}

/** Outcome of assembling an example: expected failures are data, not exceptions. */
export type ExampleResult =
  | { readonly ok: true; readonly example: Example; readonly truncated: boolean }
  | { readonly ok: false; readonly kind: ExampleProblem; readonly reason: string };

/** Why an example was rejected: it cannot fit maxSeqLen (droppable), or it has nothing to learn. */
export type ExampleProblem = 'overlong' | 'invalid';

/**
 * Concatenate segments and fit them into `maxSeqLen` tokens by cutting from the left. The last
 * loss span (the completion, or the final assistant turn, with its eos) must survive whole with at
 * least one token of context before it; otherwise the example is rejected. Earlier loss spans may be
 * cut; the first kept token never carries loss (see the convention above).
 */
export function buildExample(segments: readonly Segment[], maxSeqLen: number): ExampleResult {
  if (!Number.isInteger(maxSeqLen) || maxSeqLen < 2) throw new RangeError(`maxSeqLen must be an integer ≥ 2, got ${maxSeqLen}`);
  let total = 0;
  for (const s of segments) total += s.ids.length;
  const ids = new Int32Array(total);
  const lossMask = new Uint8Array(total);
  let at = 0;
  let lastSpanStart = -1;
  let prevLoss = false;
  for (const s of segments) {
    ids.set(s.ids, at);
    if (s.loss) {
      lossMask.fill(1, at, at + s.ids.length);
      if (!prevLoss && s.ids.length > 0) lastSpanStart = at;
    }
    if (s.ids.length > 0) prevLoss = s.loss;
    at += s.ids.length;
  }
  if (lastSpanStart < 0) return { ok: false, kind: 'invalid', reason: 'no loss tokens' };
  if (lastSpanStart === 0) return { ok: false, kind: 'invalid', reason: 'loss tokens need at least one context token before them' };
  const needed = total - lastSpanStart + 1;
  if (needed > maxSeqLen) {
    return { ok: false, kind: 'overlong', reason: `final target span needs ${needed} tokens (with one context token) but maxSeqLen is ${maxSeqLen}` };
  }
  if (total <= maxSeqLen) return { ok: true, example: { ids, lossMask }, truncated: false };
  const cut = total - maxSeqLen;
  const kept = { ids: ids.slice(cut), lossMask: lossMask.slice(cut) };
  kept.lossMask[0] = 0;
  return { ok: true, example: kept, truncated: true };
}
