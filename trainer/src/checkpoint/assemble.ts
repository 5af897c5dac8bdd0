/**
 * Checks that turn named tensors from a file into the flat parameter vector of a ParamLayout, with
 * errors that name the file, the field and the tensor (what a user needs to fix a wrong path).
 */
import { CheckpointError } from '../errors.js';
import { type ModelConfig } from '../model/config.js';
import { type ParamLayout } from '../model/params.js';
import { type NamedTensor } from '../model/safetensors.js';

const FIELDS = ['vocabSize', 'nPositions', 'nEmbd', 'nLayer', 'nHead', 'layerNormEps'] as const;

/** The ModelConfig fields that differ, as `name=value` lists for both sides; empty when equal. */
export function diffModelConfig(stored: ModelConfig, expected: ModelConfig): { stored: string[]; expected: string[] } {
  const out = { stored: [] as string[], expected: [] as string[] };
  for (const f of FIELDS) {
    if (stored[f] !== expected[f]) {
      out.stored.push(`${f}=${stored[f]}`);
      out.expected.push(`${f}=${expected[f]}`);
    }
  }
  return out;
}

/** Throw a CheckpointError when the stored architecture differs from the expected one. */
export function assertSameArchitecture(source: string, stored: ModelConfig, expected: ModelConfig): void {
  const d = diffModelConfig(stored, expected);
  if (d.stored.length > 0) {
    throw new CheckpointError(`${source}: checkpoint has architecture ${d.stored.join(', ')}, this run expects ${d.expected.join(', ')}`);
  }
}

const shapeStr = (s: readonly number[]): string => `[${s.join(', ')}]`;

/**
 * Copy `tensors` into a flat vector of `layout`: every layout tensor must be present with its
 * shape and nothing else may be left over.
 */
export function assembleParams(source: string, tensors: ReadonlyMap<string, NamedTensor>, layout: ParamLayout): Float32Array {
  const flat = new Float32Array(layout.size);
  for (const slot of layout.slots) {
    const t = tensors.get(slot.name);
    if (t === undefined) throw new CheckpointError(`${source}: tensor ${slot.name} is missing`);
    if (t.shape.length !== slot.shape.length || t.shape.some((d, i) => d !== slot.shape[i])) {
      throw new CheckpointError(`${source}: tensor ${slot.name} has shape ${shapeStr(t.shape)} but the model expects ${shapeStr(slot.shape)}`);
    }
    flat.set(t.data, slot.offset);
  }
  const extra = [...tensors.keys()].filter((n) => !layout.has(n));
  if (extra.length > 0) {
    const shown = extra.slice(0, 5).join(', ') + (extra.length > 5 ? `, … (${extra.length} in all)` : '');
    throw new CheckpointError(`${source}: unexpected tensors not in the model: ${shown}`);
  }
  return flat;
}
