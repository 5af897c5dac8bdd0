/**
 * A content hash of a tokenized dataset. A data cursor only means something for the exact dataset
 * it was taken on, so checkpoints store this next to the cursor and resume refuses a mismatch.
 */

import { createHash } from 'node:crypto';
import type { Dataset } from './dataset.js';

/** sha256 (hex) over maxSeqLen and every example's length, ids and loss mask, in order. */
export function datasetFingerprint(dataset: Dataset): string {
  const h = createHash('sha256');
  const header = new Int32Array([dataset.maxSeqLen, dataset.padId, dataset.examples.length]);
  h.update(new Uint8Array(header.buffer));
  for (const ex of dataset.examples) {
    h.update(new Uint8Array(new Int32Array([ex.ids.length]).buffer));
    h.update(new Uint8Array(ex.ids.buffer, ex.ids.byteOffset, ex.ids.byteLength));
    h.update(ex.lossMask);
  }
  return h.digest('hex');
}
