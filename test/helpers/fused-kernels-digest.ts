/**
 * Prints one JSON line: the sha256 of every fused kernel's output on seeded inputs, computed with the
 * thread count given as argv[2] (TensorFlow reads it once, when the binding loads, hence a process per
 * count). The fused-kernels unit test compares the digests of 1, 2 and 3 threads.
 */
import { createHash } from 'node:crypto';
import { initBackend } from '../../trainer/src/backend.js';
import { runAllKernels } from './fused-kernels.js';

const threads = Number(process.argv[2] ?? 1);
const info = await initBackend('tensorflow', { threads });
// Row counts that do not divide evenly among threads, and a LayerNorm gradient over several 64-row blocks.
const outputs = runAllKernels({ N: 203, F: 96, C: 80, B: 2, H: 3, T: 37 }, 7);
const digests = Object.fromEntries(
  outputs.map((o) => [
    o.name,
    createHash('sha256')
      .update(new Uint8Array(o.data.buffer, o.data.byteOffset, o.data.byteLength))
      .digest('hex'),
  ]),
);
process.stdout.write(`${JSON.stringify({ threads: info.threads, fusedKernels: info.fusedKernels, digests })}\n`);
