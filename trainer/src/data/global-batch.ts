/**
 * Data-parallel split of one optimizer step's examples. A global batch is the next
 * G = worldSize · accumSteps · microBatch examples from the cursor (every rank draws the same ones);
 * rank r's micro-step m takes the contiguous slice starting at global position
 * (r · accumSteps + m) · microBatch. Rank-major slices mean (N ranks, A steps) and (1 rank, N·A
 * steps) see the same examples in the same order, and the loss denominator is known to all ranks.
 */

import { buildBatch, exampleLossTokens, type Batch } from './batch.js';
import { takeExamples } from './batch-iterator.js';
import type { DataCursor } from './data-cursor.js';
import type { Dataset } from './dataset.js';

/** Who this rank is and how an optimizer step is divided. */
export interface GlobalBatchLayout {
  readonly rank: number;
  readonly worldSize: number;
  /** Examples per micro-batch (per forward/backward pass). */
  readonly microBatch: number;
  /** Micro-batches accumulated per optimizer step on each rank. */
  readonly accumSteps: number;
}

/** Examples per optimizer step across all ranks. */
export function globalBatchSize(layout: GlobalBatchLayout): number {
  return layout.worldSize * layout.accumSteps * layout.microBatch;
}

/** This rank's `accumSteps` micro-batches out of a global batch (see the file comment for the slice). */
export function globalBatchSlice<T>(globalExamples: readonly T[], layout: GlobalBatchLayout): T[][] {
  checkLayout(layout);
  const { rank, accumSteps, microBatch } = layout;
  if (globalExamples.length !== globalBatchSize(layout)) {
    throw new RangeError(`globalBatchSlice: got ${globalExamples.length} examples, layout needs ${globalBatchSize(layout)}`);
  }
  const out: T[][] = [];
  for (let m = 0; m < accumSteps; m++) {
    const start = (rank * accumSteps + m) * microBatch;
    out.push(globalExamples.slice(start, start + microBatch));
  }
  return out;
}

/** One optimizer step's data for this rank, the global loss-token count (the loss denominator), and the next cursor. */
export function nextGlobalBatch(
  dataset: Dataset,
  seed: number | bigint,
  cursor: DataCursor,
  layout: GlobalBatchLayout,
): { microBatches: Batch[]; globalLossTokens: number; globalTokens: number; cursor: DataCursor } {
  checkLayout(layout);
  const taken = takeExamples(dataset, seed, cursor, globalBatchSize(layout));
  // Every rank counts all targets of the step, so per-token loss averaging needs no extra collective.
  let globalLossTokens = 0;
  let globalTokens = 0;
  for (const ex of taken.examples) {
    globalLossTokens += exampleLossTokens(ex);
    globalTokens += ex.ids.length;
  }
  const microBatches = globalBatchSlice(taken.examples, layout).map((xs) => buildBatch(xs, dataset.maxSeqLen, dataset.padId));
  return { microBatches, globalLossTokens, globalTokens, cursor: taken.cursor };
}

function checkLayout(l: GlobalBatchLayout): void {
  const positive = (v: number): boolean => Number.isInteger(v) && v > 0;
  if (!positive(l.worldSize) || !positive(l.microBatch) || !positive(l.accumSteps) || !Number.isInteger(l.rank) || l.rank < 0 || l.rank >= l.worldSize) {
    throw new RangeError(`bad global batch layout ${JSON.stringify(l)}`);
  }
}
