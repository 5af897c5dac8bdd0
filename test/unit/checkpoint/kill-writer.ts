/**
 * Child process for the kill test: writes large checkpoints into argv[2] from step argv[3] on, in a
 * loop, after printing "ready"; the parent SIGKILLs it at some moment.
 */
import { writeCheckpoint } from '../../../trainer/src/checkpoint/index.js';
import { type ModelConfig } from '../../../trainer/src/model/config.js';
import { buildPayload } from './fixtures.js';

const BIG: ModelConfig = { vocabSize: 50_000, nPositions: 64, nEmbd: 128, nLayer: 1, nHead: 4, layerNormEps: 1e-5 }; // ~6.6M params

const dir = process.argv[2] ?? '';
let step = Number(process.argv[3] ?? '2');
const payload = buildPayload(step, BIG);
process.stdout.write('ready\n');
for (;;) {
  await writeCheckpoint(dir, { ...payload, state: { ...payload.state, step }, optimizer: { ...payload.optimizer, step } }, { keep: 2 });
  step++;
}
