/**
 * GPT-2 initialisation (Radford et al. 2019, as in nanoGPT): weights N(0, 0.02), residual output
 * projections N(0, 0.02/sqrt(2L)), biases 0, LayerNorm gain 1. Deterministic by seed.
 */
import { Rng, deriveSeed } from '../rng.js';
import { ParamLayout } from './params.js';

/** A freshly initialised flat parameter vector. */
export function initParams(layout: ParamLayout, seed: number): Float32Array {
  const flat = new Float32Array(layout.size);
  const residualStd = 0.02 / Math.sqrt(2 * layout.config.nLayer);
  layout.slots.forEach((slot, i) => {
    const v = flat.subarray(slot.offset, slot.offset + slot.size);
    if (slot.kind === 'norm') {
      if (slot.name.endsWith('.weight')) v.fill(1);
      return;
    }
    if (slot.name.endsWith('.bias')) return;
    const std = slot.name.endsWith('c_proj.weight') ? residualStd : 0.02;
    const rng = new Rng(deriveSeed(seed, 'init', i));
    for (let j = 0; j < v.length; j++) v[j] = rng.nextNormal() * std;
  });
  return flat;
}
