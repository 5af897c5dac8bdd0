// Frames a test forges: one whole message in a single chunk, valid in every field the receiver
// checks apart from those the test overrides (its job, attempt, step, phase…).

import type { DataFrameFields } from '../../trainer/src/collective/nats/wire.js';

/** A single-chunk reduce-scatter frame from rank 1 to rank 0 carrying `payload`, with `over` applied. */
export function singleChunkFrame(payload: Uint8Array, over: Partial<DataFrameFields> = {}): DataFrameFields {
  return {
    source: 1,
    step: 1,
    phase: 'reduce_scatter',
    broadcast: false,
    dest: 0,
    tag: 0,
    chunkIndex: 0,
    chunkCount: 1,
    totalLength: payload.length,
    chunkSize: payload.length,
    messageCrc: 0,
    payload,
    ...over,
  };
}
