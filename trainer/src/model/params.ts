/**
 * The parameters as one flat fp32 vector with named views. The flat layout (paramSpecs order) is
 * what optimizers, masks, checkpoints and collectives (docs/architecture.md §3: "flat fp32 vector, split in
 * N contiguous shards") operate on; the model reads per-tensor views of it.
 */
import { type ModelConfig, type ParamSpec, paramSpecs } from './config.js';

/** A parameter's place in the flat vector. */
export interface ParamSlot extends ParamSpec {
  readonly offset: number;
  readonly size: number;
}

/** Ordered slots and total size for a model config. */
export class ParamLayout {
  readonly slots: readonly ParamSlot[];
  readonly size: number;
  private readonly byName: ReadonlyMap<string, ParamSlot>;

  constructor(readonly config: ModelConfig) {
    let offset = 0;
    const slots: ParamSlot[] = [];
    for (const spec of paramSpecs(config)) {
      const size = spec.shape.reduce((a, b) => a * b, 1);
      slots.push({ ...spec, offset, size });
      offset += size;
    }
    this.slots = slots;
    this.size = offset;
    this.byName = new Map(slots.map((s) => [s.name, s]));
  }

  /** The slot of a parameter name; throws on an unknown name (a programming error). */
  slot(name: string): ParamSlot {
    const s = this.byName.get(name);
    if (s === undefined) throw new Error(`unknown parameter ${name}`);
    return s;
  }

  /** Whether the layout has this name. */
  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** A view (no copy) of one tensor inside a flat vector of this layout. */
  view(flat: Float32Array, name: string): Float32Array {
    const s = this.slot(name);
    return flat.subarray(s.offset, s.offset + s.size);
  }

  /** Per-tensor views of a flat vector, in layout order. */
  views(flat: Float32Array): Float32Array[] {
    return this.slots.map((s) => flat.subarray(s.offset, s.offset + s.size));
  }
}
