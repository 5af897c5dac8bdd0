/**
 * A tokenized, immutable fine-tuning dataset. Examples keep file order; shuffling happens per
 * epoch at batch time (shuffle.ts), so the dataset itself never depends on the seed.
 *
 * Overlong examples (whose final target span cannot fit, see example.ts) are an error by default,
 * naming the line; with `overlong: 'drop'` they are skipped and listed in `dropped` for the caller
 * to log once as a warning.
 */

import { DataError } from '../errors.js';
import { encodeRecord } from './encode-record.js';
import type { Example } from './example.js';
import { readJsonl, type LocatedRecord } from './jsonl-reader.js';
import type { Tokenizer } from './tokenizer.js';

/** What to do with an example whose completion cannot fit into maxSeqLen. */
export type OverlongPolicy = 'error' | 'drop';

/** How records become examples. */
export interface DatasetOptions {
  /** Longest example in tokens, BOS and eos included; also the batch's seqLen. */
  readonly maxSeqLen: number;
  /** Default 'error'. */
  readonly overlong?: OverlongPolicy;
}

/** Tokenized examples plus what happened on the way. */
export interface Dataset {
  /** File path or a label such as `synthetic:arithmetic`, used in messages. */
  readonly source: string;
  readonly examples: readonly Example[];
  readonly maxSeqLen: number;
  /** The tokenizer's pad id, used to fill batches. */
  readonly padId: number;
  /** Examples whose prompt (or early turns) were cut from the left. */
  readonly truncated: number;
  /** `source:line: reason` for each dropped example (only with overlong: 'drop'). */
  readonly dropped: readonly string[];
}

/** Tokenize located records; DataError (naming `source:line`) on unusable records or an empty result. */
export function buildDataset(source: string, records: readonly LocatedRecord[], tokenizer: Tokenizer, options: DatasetOptions): Dataset {
  const policy = options.overlong ?? 'error';
  const examples: Example[] = [];
  const dropped: string[] = [];
  let truncated = 0;
  for (const { line, record } of records) {
    const result = encodeRecord(tokenizer, record, options.maxSeqLen);
    if (result.ok) {
      examples.push(result.example);
      if (result.truncated) truncated++;
      continue;
    }
    const message = `${source}:${line}: ${result.reason}`;
    // Only the length problem is droppable; an empty completion is a data bug either way.
    if (policy === 'drop' && result.kind === 'overlong') dropped.push(message);
    else throw new DataError(message);
  }
  if (examples.length === 0) throw new DataError(`${source}: no usable examples (${dropped.length} dropped as too long)`);
  return { source, examples, maxSeqLen: options.maxSeqLen, padId: tokenizer.padId, truncated, dropped };
}

/** Read and tokenize the JSONL file at `path`. */
export async function loadJsonlDataset(path: string, tokenizer: Tokenizer, options: DatasetOptions): Promise<Dataset> {
  return buildDataset(path, await readJsonl(path), tokenizer, options);
}
