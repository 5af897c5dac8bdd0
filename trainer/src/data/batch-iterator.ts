/**
 * Drawing examples and batches as pure functions of (dataset, seed, cursor): no hidden state, so
 * a resumed run that restores the cursor draws the same batches. A batch that reaches the end of an
 * epoch continues into the next epoch's order; batches are always full.
 */

import { DataError } from '../errors.js';
import { buildBatch, type Batch } from './batch.js';
import { advanceCursor, type DataCursor } from './data-cursor.js';
import type { Dataset } from './dataset.js';
import type { Example } from './example.js';
import { epochOrder } from './shuffle.js';

/** The `count` examples starting at `cursor`, and the cursor after them. */
export function takeExamples(dataset: Dataset, seed: number | bigint, cursor: DataCursor, count: number): { examples: Example[]; cursor: DataCursor } {
  const n = dataset.examples.length;
  if (!Number.isInteger(cursor.epoch) || cursor.epoch < 0 || !Number.isInteger(cursor.index) || cursor.index < 0 || cursor.index >= n) {
    throw new DataError(`${dataset.source}: data cursor ${JSON.stringify(cursor)} does not fit a dataset of ${n} examples`);
  }
  const examples: Example[] = [];
  let { epoch, index } = cursor;
  let order = epochOrder(seed, epoch, n);
  for (let k = 0; k < count; k++) {
    examples.push(dataset.examples[order[index]!]!);
    if (++index === n) {
      epoch++;
      index = 0;
      order = epochOrder(seed, epoch, n);
    }
  }
  return { examples, cursor: advanceCursor(cursor, count, n) };
}

/** The next [batchSize, dataset.maxSeqLen] batch from `cursor`, and the cursor after it. */
export function nextBatch(dataset: Dataset, seed: number | bigint, cursor: DataCursor, batchSize: number): { batch: Batch; cursor: DataCursor } {
  if (!Number.isInteger(batchSize) || batchSize <= 0) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  const taken = takeExamples(dataset, seed, cursor, batchSize);
  return { batch: buildBatch(taken.examples, dataset.maxSeqLen, dataset.padId), cursor: taken.cursor };
}
