/**
 * trainer-state.json: everything besides tensors that a resumed run needs to continue the
 * uninterrupted run bit for bit (docs/architecture.md §4): step, data cursor, RNG state, config hash and
 * the resolved config, plus statistics shown in status and logs.
 */
import { z } from 'zod';
import { DataCursorSchema } from '../data/data-cursor.js';

const u32 = z.number().int().min(0).max(0xffff_ffff);
const count = z.number().int().nonnegative();

/** Mask statistics of the last optimizer step. */
export const MaskStatsSchema = z.strictObject({
  keptRatio: z.number().min(0).max(1), // kept entries / all entries
  threshold: z.number(), // |g| threshold of the last selection
  kept: count, // kept entries
});

/** Schema of trainer-state.json (strict; formatVersion bumps on incompatible changes). */
export const TrainerStateSchema = z.strictObject({
  formatVersion: z.literal(1),
  step: count, // optimizer steps completed
  totalSteps: count, // planned optimizer steps of the run
  dataCursor: DataCursorSchema, // the next example to draw
  rngState: z.tuple([u32, u32, u32, u32]), // Rng (xoshiro128**) state words
  configHash: z.string().min(1), // hash of the fields that change a run's numbers
  config: z.record(z.string(), z.unknown()), // the resolved trainer config
  datasetFingerprint: z.string(), // identifies the training data
  skippedSteps: count, // steps skipped for non-finite gradients so far
  maskStats: MaskStatsSchema.nullable(), // last step's mask statistics (null before the first)
  metrics: z.strictObject({
    loss: z.number().nullable(), // last training loss (null when unknown or non-finite)
    tokensSeen: count,
    samplesSeen: count,
  }),
  baseModel: z.string(), // where the initial weights came from
  createdAt: z.iso.datetime(), // when the checkpoint was written (ISO 8601)
  attempt: count, // operator attempt that wrote it
  worldSize: z.number().int().positive(), // ranks of the writing run
});

/** The trainer state stored in each checkpoint. */
export type TrainerState = z.infer<typeof TrainerStateSchema>;
